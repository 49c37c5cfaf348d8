package containers

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
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
// usersvc:dev) with env added to the container's environment, on the host's
// network with HTTP_ADDR set to a free loopback port, and waits until /readyz
// answers 200. The caller sets DATABASE_URL, KAFKA_BROKERS and the rest, e.g.
// from NewDatabase and KafkaBrokers. It is never pulled: a missing image is
// an error telling how to build it.
func StartService(ctx context.Context, env map[string]string) (*Service, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	image := envOr(ServiceImageEnv, DefaultServiceImage)
	present, err := imagePresent(ctx, image)
	if err != nil {
		return nil, err
	}
	if !present {
		return nil, fmt.Errorf("service image %s is not built; run test/images/build.sh service (make test-images)", image)
	}
	return withRetries(ctx, startAttempts, func() (*Service, error) { return tryStartService(ctx, image, env) })
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
	// Authentication and the admin listener are off unless the test says.
	for name, value := range map[string]string{"AUTH_MODE": "none", "ADMIN_ADDR": ""} {
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
