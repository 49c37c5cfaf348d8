package containers

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// Service image settings: the image of deploy/Dockerfile that
// test/images/build.sh builds (or any tag of it).
const (
	ServiceImageEnv     = "USERS_TEST_SERVICE_IMAGE"
	DefaultServiceImage = "usersvc:dev"
	serviceStartTimeout = time.Minute
)

// Service is a running container of the service's own image, serving HTTP
// on 127.0.0.1.
type Service struct {
	Image string
	Port  int

	container *testcontainers.DockerContainer
}

// StartService runs the service image (USERS_TEST_SERVICE_IMAGE, default
// usersvc:dev built from deploy/Dockerfile, see serviceImage) with env added to the container's environment, on the host's
// network with HTTP_ADDR set to a free loopback port, and waits until /readyz
// answers 200. The caller sets DATABASE_URL, KAFKA_BROKERS and the rest, e.g.
// from NewDatabase and KafkaBrokers.
func StartService(ctx context.Context, env map[string]string) (*Service, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	image, err := serviceImage(ctx)
	if err != nil {
		return nil, err
	}
	return withRetries(ctx, startAttempts, func() (*Service, error) { return tryStartService(ctx, image, env) })
}

// The service image is built once per test process.
var (
	serviceImageOnce sync.Once
	serviceImageRef  string
	serviceImageErr  error
)

// serviceImage returns the image to run: USERS_TEST_SERVICE_IMAGE as it is
// when set; otherwise usersvc:dev built from deploy/Dockerfile with its
// upstream bases (Docker's layer cache makes a rebuild of unchanged code
// quick), so that a machine with a registry tests the code at hand. Where
// the build cannot pull its bases (no registry), the usersvc:dev that
// test/images/build.sh made from the same Dockerfile with local bases is
// used.
func serviceImage(ctx context.Context) (string, error) {
	if image := os.Getenv(ServiceImageEnv); image != "" {
		present, err := imagePresent(ctx, image)
		if err == nil && !present {
			err = fmt.Errorf("service image %s (%s) is not built", image, ServiceImageEnv)
		}
		return image, err
	}
	serviceImageOnce.Do(func() {
		serviceImageRef = DefaultServiceImage
		buildErr := buildServiceImage(ctx, DefaultServiceImage)
		if buildErr == nil {
			return
		}
		present, err := imagePresent(ctx, DefaultServiceImage)
		switch {
		case err != nil:
			serviceImageErr = err
		case !present:
			serviceImageErr = fmt.Errorf("service image %s: building it from deploy/Dockerfile failed (%w); without a registry run test/images/build.sh service (make test-images)", DefaultServiceImage, buildErr)
		default:
			fmt.Fprintf(os.Stderr, "containers: deploy/Dockerfile with upstream bases did not build (%v); using the %s that test/images/build.sh built\n", firstLine(buildErr.Error()), DefaultServiceImage)
		}
	})
	return serviceImageRef, serviceImageErr
}

// buildServiceImage builds deploy/Dockerfile from the repository root with
// the Go version of go.mod's toolchain line.
func buildServiceImage(ctx context.Context, ref string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	goVersion := toolchainVersion(string(goMod))
	repo, tag, _ := strings.Cut(ref, ":")
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		return err
	}
	defer provider.Close()
	_, err = provider.BuildImage(ctx, &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context: root, Dockerfile: "deploy/Dockerfile", Repo: repo, Tag: tag, KeepImage: true,
		BuildArgs: map[string]*string{"GO_VERSION": &goVersion},
	}})
	return err
}

// toolchainVersion is the version of go.mod's toolchain line without "go".
func toolchainVersion(goMod string) string {
	for _, line := range strings.Split(goMod, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "toolchain go"); ok {
			return v
		}
	}
	return ""
}

// repoRoot is the module's root directory, found from this source file.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the repository")
	}
	return filepath.Join(filepath.Dir(file), "..", ".."), nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func tryStartService(ctx context.Context, image string, env map[string]string) (*Service, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	s := &Service{Image: image, Port: ports[0]}
	all := maps.Clone(env)
	if all == nil {
		all = map[string]string{}
	}
	all["HTTP_ADDR"] = s.addr()
	// Authentication, the admin listener and the rate limits are off unless
	// the test says: every client of these tests is 127.0.0.1, one address
	// the default limits would throttle.
	for name, value := range map[string]string{"AUTH_MODE": "none", "ADMIN_ADDR": "", "RATE_LIMIT_CREATE": "off", "RATE_LIMIT_PASSWORD": "off"} {
		if _, set := all[name]; !set {
			all[name] = value
		}
	}
	ready := readiness{
		what:    fmt.Sprintf("service %s on %s", image, s.addr()),
		timeout: serviceStartTimeout,
		check:   s.ready,
	}
	c, err := runContainer(ctx, image, "service", ready, testcontainers.WithEnv(all))
	if err != nil {
		return nil, err
	}
	s.container = c
	return s, nil
}

func (s *Service) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the service's base URL, http://127.0.0.1:port.
func (s *Service) URL() string { return "http://" + s.addr() }

// Container is the running container (logs, stop, signals).
func (s *Service) Container() *testcontainers.DockerContainer { return s.container }

// Terminate stops and removes the container.
func (s *Service) Terminate(ctx context.Context) error {
	if s == nil {
		return nil
	}
	return testcontainers.TerminateContainer(s.container, testcontainers.StopContext(ctx))
}

func (s *Service) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /readyz: %s", res.Status)
	}
	return nil
}
