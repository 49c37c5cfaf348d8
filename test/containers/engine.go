package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// ProviderName is the testcontainers runtime provider this package registers
// and selects: Docker with "host" as the default network and 127.0.0.1 as the
// address of published ports.
const ProviderName = "usersvc-hostnet"

// localImagePrefix names the images test/images/build.sh builds; no
// registry has them.
const localImagePrefix = "usersvc-test/"

// ryukImage is the reaper image of testcontainers-go v0.45.0.
const ryukImage = "testcontainers/ryuk:0.14.0"

// Labels on every container this package starts. The process id and its
// PID namespace identify the owner, so that containers left by a killed test
// process can be removed by the next one without touching live ones.
const (
	labelOwnerPID = "org.usersvc.test.pid"
	labelOwnerNS  = "org.usersvc.test.pidns"
	labelRole     = "org.usersvc.test.role"
)

var registerErr = testcontainers.RegisterProvider(ProviderName, func() testcontainers.RuntimeProvider {
	return hostNetwork{}
})

type hostNetwork struct{}

func (hostNetwork) Initialize(context.Context) (testcontainers.RuntimeConfig, error) {
	return testcontainers.RuntimeConfig{DefaultBridgeNetwork: "host", PublishedHost: "127.0.0.1"}, nil
}

var (
	prepareOnce sync.Once
	prepareErr  error
	engine      *client.Client
)

// prepare checks the engine, settles the testcontainers settings that must
// be in the environment before testcontainers first reads its configuration,
// and removes containers left by dead test processes. It runs once per
// process.
func prepare(ctx context.Context) error {
	prepareOnce.Do(func() { prepareErr = doPrepare(ctx) })
	return prepareErr
}

func doPrepare(ctx context.Context) error {
	if registerErr != nil {
		return fmt.Errorf("register testcontainers provider %s: %w", ProviderName, registerErr)
	}
	// Settled before testcontainers reads its configuration, which it does
	// once, when its first client is made.
	if os.Getenv("TESTCONTAINERS_PROVIDER") == "" {
		if err := os.Setenv("TESTCONTAINERS_PROVIDER", ProviderName); err != nil {
			return err
		}
	}
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" && !ryukPresent(ctx) {
		// Nothing may be able to pull it; cleanup is done by Terminate and
		// reapOrphans instead.
		if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
			return err
		}
	}
	// testcontainers' own discovery: DOCKER_HOST, the current docker
	// context (Docker Desktop, Colima), the default socket, rootless Docker.
	dc, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("no Docker engine found (%w); `make test` needs one: test/images/ensure-docker.sh says what to install, and `make test-unit` needs none", err)
	}
	cli := dc.Client
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pingCtx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		_ = cli.Close()
		return fmt.Errorf("no Docker engine answers (%w); `make test` needs one: test/images/ensure-docker.sh starts or names one, and `make test-unit` needs none", err)
	}
	info, err := cli.Info(pingCtx, client.InfoOptions{})
	if err != nil {
		_ = cli.Close()
		return fmt.Errorf("ask the Docker engine about itself: %w", err)
	}
	if problem := hostNetworkProblem(info.Info); problem != "" {
		_ = cli.Close()
		return fmt.Errorf("the containers of these suites run on the engine's host network and listen on 127.0.0.1 (test/containers/doc.go), but %s, so this process could not reach them. Use a rootful engine (test/images/ensure-docker.sh starts one on Debian), or point the suites at existing servers with the USERSVC_TEST_*_URL variables", problem)
	}
	engine = cli
	return reapOrphans(ctx)
}

// hostNetworkProblem says why containers on the engine's host network
// would not be reachable on this machine's loopback, as far as the engine
// tells: "" when nothing says so. Rootless Docker's host network is its
// RootlessKit namespace, whose loopback is not this machine's; a VM's
// (Docker Desktop, Colima) is shown only by the readiness check's hint.
func hostNetworkProblem(info system.Info) string {
	for _, opt := range info.SecurityOptions {
		if strings.Contains(opt, "name=rootless") {
			return "the engine is rootless Docker, whose host network is its own namespace"
		}
	}
	return ""
}

// ryukPresent says whether the reaper image is there, asking the engine
// DOCKER_HOST or the default socket names (false when none answers there).
func ryukPresent(ctx context.Context) bool {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return false
	}
	defer cli.Close()
	_, err = cli.ImageInspect(ctx, ryukImage)
	return err == nil
}

func imagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := engine.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
}

// resolveImage returns the image to run: ref when it is present or can be
// pulled (once, so that an offline machine does not retry pulls until the
// start-up deadline). When ref is the upstream default (envVar unset) and no
// registry answers, the local stand-in that test/images/build.sh builds is
// used instead if it exists; otherwise the error says how to get one.
func resolveImage(ctx context.Context, ref, envVar, localAlternative string) (string, error) {
	present, err := imagePresent(ctx, ref)
	if err != nil || present {
		return ref, err
	}
	if strings.HasPrefix(ref, localImagePrefix) {
		return "", fmt.Errorf("image %s is not built; run test/images/build.sh (make test-images)", ref)
	}
	pull, err := engine.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = pull.Wait(ctx)
	}
	if err == nil {
		return ref, nil
	}
	if os.Getenv(envVar) == "" {
		if ok, _ := imagePresent(ctx, localAlternative); ok {
			fmt.Fprintf(os.Stderr, "containers: %s cannot be pulled (no registry answers); using the local stand-in %s\n", ref, localAlternative)
			return localAlternative, nil
		}
	}
	return "", fmt.Errorf("image %s is not present and cannot be pulled (%w); without a registry, build the local images with test/images/build.sh (make test-images), which the suites then use (or set %s=%s)", ref, err, envVar, localAlternative)
}

// ownerLabels marks a container as this process's.
func ownerLabels(role string) map[string]string {
	return map[string]string{
		labelOwnerPID: strconv.Itoa(os.Getpid()),
		labelOwnerNS:  pidNamespace(),
		labelRole:     role,
	}
}

func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return "unknown"
	}
	return ns
}

// reapOrphans removes containers that test processes of this PID namespace
// started and did not remove because they died (killed, or timed out by go
// test) while Ryuk was not there to do it.
func reapOrphans(ctx context.Context) error {
	list, err := engine.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", labelOwnerNS+"="+pidNamespace()),
	})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, c := range list.Items {
		pid, err := strconv.Atoi(c.Labels[labelOwnerPID])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		_, err = engine.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %.12s left by dead process %d: %w", c.ID, pid, err)
		}
		fmt.Fprintf(os.Stderr, "containers: removed container %.12s (%s) left by dead test process %d\n", c.ID, c.Labels[labelRole], pid)
	}
	return nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1. A
// container is handed them by its environment; another process may take one
// in between, which start retries with new ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startAttempts bounds the starts of one container: a port chosen free may
// be taken by another process before the server binds it.
const startAttempts = 3

func withRetries[T any](ctx context.Context, attempts int, start func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range attempts {
		if v, err = start(); err == nil || ctx.Err() != nil {
			break
		}
	}
	return v, err
}

// runContainer starts image in the host's network (nothing published, no
// network created: the server binds 127.0.0.1 itself), labelled as this
// process's, and waits until ready. On failure it removes the container and
// returns its last log lines with the error.
func runContainer(ctx context.Context, image, role string, ready readiness, opts ...testcontainers.ContainerCustomizer) (*testcontainers.DockerContainer, error) {
	opts = append(opts,
		testcontainers.WithLabels(ownerLabels(role)),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.NetworkMode = "host" }),
		testcontainers.WithWaitStrategy(ready),
	)
	c, err := testcontainers.Run(ctx, image, opts...)
	if err != nil {
		logs := logTail(context.WithoutCancel(ctx), c, 30)
		_ = testcontainers.TerminateContainer(c)
		return nil, fmt.Errorf("start %s: %w\n--- container log ---\n%s", image, err, logs)
	}
	return c, nil
}

// logTail returns the last lines of a container's output, for errors.
func logTail(ctx context.Context, c testcontainers.Container, lines int) string {
	if c == nil {
		return ""
	}
	r, err := c.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer r.Close()
	b, _ := io.ReadAll(io.LimitReader(r, 1<<20))
	return lastLines(string(b), lines)
}

func lastLines(s string, n int) string {
	end := len(s)
	for end > 0 && s[end-1] == '\n' {
		end--
	}
	start := end
	for count := 0; start > 0; start-- {
		if s[start-1] == '\n' {
			if count++; count == n {
				break
			}
		}
	}
	return s[start:end]
}
