package containers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/testcontainers/testcontainers-go"
)

// RabbitMQ image settings.
const (
	RabbitMQImageEnv     = "USERS_TEST_RABBITMQ_IMAGE"
	DefaultRabbitMQImage = "rabbitmq:3.13"
	LocalRabbitMQImage   = "usersvc-test/rabbitmq:3.10"
	rabbitStartTimeout   = 2 * time.Minute
	rabbitUser           = "usersvc"
	// rabbitPluginsFile is copied into every container: no plugins, since
	// the upstream image enables the Prometheus one, whose listener would
	// take a fixed port of the host's network.
	rabbitPluginsFile = "/tmp/usersvc-enabled-plugins"
)

// RabbitMQ is a running RabbitMQ broker on 127.0.0.1.
type RabbitMQ struct {
	Image string
	Port  int
	// TLSPort serves AMQPS (StartRabbitMQTLS only; 0 otherwise).
	TLSPort int

	password  string
	container *testcontainers.DockerContainer
	vhosts    *vhosts
}

// RabbitMQImage returns the image chosen by the environment.
func RabbitMQImage() string { return envOr(RabbitMQImageEnv, DefaultRabbitMQImage) }

// rabbitSettings returns the environment of a broker whose AMQP listener,
// Erlang distribution listener and epmd all use the given ports on
// 127.0.0.1: with host networking the defaults (5672, 25672, 4369) are the
// machine's own broker's. RabbitMQ itself reads these variables, so the
// upstream image and the local one take the same set.
func rabbitSettings(amqpPort, distPort, epmdPort int, password string) map[string]string {
	return map[string]string{
		"RABBITMQ_DEFAULT_USER":               rabbitUser,
		"RABBITMQ_DEFAULT_PASS":               password,
		"RABBITMQ_NODE_PORT":                  strconv.Itoa(amqpPort),
		"RABBITMQ_NODE_IP_ADDRESS":            "127.0.0.1",
		"RABBITMQ_DIST_PORT":                  strconv.Itoa(distPort),
		"RABBITMQ_NODENAME":                   rabbitNode,
		"ERL_EPMD_PORT":                       strconv.Itoa(epmdPort),
		"ERL_EPMD_ADDRESS":                    "127.0.0.1",
		"RABBITMQ_ENABLED_PLUGINS_FILE":       rabbitPluginsFile,
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
	}
}

// StartRabbitMQ starts a broker container (USERS_TEST_RABBITMQ_IMAGE,
// default rabbitmq:3.13; usersvc-test/rabbitmq:3.10 on machines without a
// registry) and waits until it accepts an AMQP connection.
func StartRabbitMQ(ctx context.Context) (*RabbitMQ, error) { return startRabbitMQ(ctx, nil) }

// rabbitAdvancedConfig is where StartRabbitMQTLS puts the broker's TLS
// listener: RABBITMQ_ADVANCED_CONFIG_FILE is read by the upstream image and
// the local one alike, and neither entrypoint writes it.
const rabbitAdvancedConfig = "/tmp/usersvc-advanced.config"

// StartRabbitMQTLS starts a broker (RabbitMQImage) that also serves AMQPS
// on TLSPort with files' server certificate, and admits a TLS client only
// with a certificate signed by files.CA (verify_peer,
// fail_if_no_peer_cert). The plain listener stays, for readiness.
// Terminate removes it.
func StartRabbitMQTLS(ctx context.Context, files TLSServer) (*RabbitMQ, error) {
	return startRabbitMQ(ctx, &files)
}

func startRabbitMQ(ctx context.Context, tls *TLSServer) (*RabbitMQ, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	image, err := resolveImage(ctx, RabbitMQImage(), RabbitMQImageEnv, LocalRabbitMQImage)
	if err != nil {
		return nil, err
	}
	return withRetries(ctx, startAttempts, func() (*RabbitMQ, error) { return tryStartRabbitMQ(ctx, image, tls) })
}

func tryStartRabbitMQ(ctx context.Context, image string, tls *TLSServer) (*RabbitMQ, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	r := &RabbitMQ{Image: image, Port: ports[0], password: randomHex(12)}
	env := rabbitSettings(ports[0], ports[1], ports[2], r.password)
	extra := []testcontainers.ContainerCustomizer{}
	if tls != nil {
		r.TLSPort = ports[3]
		env["RABBITMQ_ADVANCED_CONFIG_FILE"] = rabbitAdvancedConfig
		conf := fmt.Sprintf(`[{rabbit, [
  {ssl_listeners, [{"127.0.0.1", %d}]},
  {ssl_options, [{cacertfile, "%s"}, {certfile, "%s"}, {keyfile, "%s"},
                 {verify, verify_peer}, {fail_if_no_peer_cert, true}]}
]}].
`, r.TLSPort, tlsCAFile, tlsCertFile, tlsKeyFile)
		extra = append(extra, tls.files(), testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader: strings.NewReader(conf), ContainerFilePath: rabbitAdvancedConfig, FileMode: 0o644,
		}))
	}
	ready := readiness{
		what:    fmt.Sprintf("broker %s on %s", image, r.addr()),
		timeout: rabbitStartTimeout,
		check:   r.ping,
	}
	c, err := runContainer(ctx, image, "rabbitmq", ready, append([]testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(env),
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader: strings.NewReader("[].\n"), ContainerFilePath: rabbitPluginsFile, FileMode: 0o644,
		}),
	}, extra...)...)
	if err != nil {
		return nil, err
	}
	r.container = c
	r.vhosts = newVhosts(c)
	return r, nil
}

func (r *RabbitMQ) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port)) }

// URL is the broker's AMQP URL on the default vhost. Tests get one of
// their own from NewVhost (or AMQPURL) instead.
func (r *RabbitMQ) URL() string { return r.vhostURL("") }

// TLSURL is the broker's AMQPS URL on the default vhost, for host (the
// name or address the client verifies the server certificate against).
func (r *RabbitMQ) TLSURL(host string) string {
	u := url.URL{Scheme: "amqps", User: url.UserPassword(rabbitUser, r.password), Host: net.JoinHostPort(host, strconv.Itoa(r.TLSPort)), Path: "/"}
	return u.String()
}

func (r *RabbitMQ) ping(ctx context.Context) error {
	deadline, _ := ctx.Deadline()
	conn, err := amqp.DialConfig(r.URL(), amqp.Config{Dial: amqp.DefaultDial(time.Until(deadline))})
	if err != nil {
		return err
	}
	return conn.Close()
}

// Container is the running container, e.g. to stop it in a fault test.
func (r *RabbitMQ) Container() *testcontainers.DockerContainer { return r.container }

// Terminate removes the container, once the vhosts of tests that ended
// are deleted: a vhost that could not be is an error.
func (r *RabbitMQ) Terminate(ctx context.Context) error {
	if r == nil {
		return nil
	}
	return errors.Join(r.vhosts.wait(), testcontainers.TerminateContainer(r.container, testcontainers.StopContext(ctx)))
}
