package containers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Broker image settings.
const (
	KafkaImageEnv     = "USERS_TEST_KAFKA_IMAGE"
	DefaultKafkaImage = "apache/kafka:3.9.0"
	LocalKfakeImage   = "usersvc-test/kfake:dev"
	kafkaStartTimeout = 2 * time.Minute
	// kafkaPartitions is the broker default for topics created without a
	// partition count.
	kafkaPartitions = 3
)

// Flavors of Kafka-protocol images, told apart by the image name.
const (
	FlavorKafka = "kafka" // apache/kafka: a real KRaft broker
	FlavorKfake = "kfake" // usersvc-test/kfake: the protocol-compatible stand-in
)

// Kafka is a running single-node broker on 127.0.0.1.
type Kafka struct {
	Image  string
	Flavor string
	// Port serves clients; ControllerPort is KRaft's own listener (0 for kfake).
	Port           int
	ControllerPort int

	container *testcontainers.DockerContainer
	// seeds, when set, are an existing broker's addresses (no container).
	seeds []string
}

func kafkaFlavor(image string) string {
	repo, _, _ := strings.Cut(path.Base(image), ":")
	if strings.Contains(repo, "kfake") {
		return FlavorKfake
	}
	return FlavorKafka
}

// kafkaEnv configures a broker whose clients connect to 127.0.0.1:port.
// Topics are never created implicitly: as in production, they exist
// because someone created them (NewTopic here).
func kafkaEnv(flavor string, port, controllerPort int, clusterID string) map[string]string {
	if flavor == FlavorKfake {
		return map[string]string{
			"KFAKE_PORT":        strconv.Itoa(port),
			"KFAKE_PARTITIONS":  strconv.Itoa(kafkaPartitions),
			"KFAKE_AUTO_CREATE": "false",
		}
	}
	// apache/kafka: one KRaft node that is both controller and broker. When
	// any KAFKA_ variable is set the image takes its whole configuration
	// from the environment, so everything a single node needs is here.
	return map[string]string{
		"CLUSTER_ID":                           clusterID,
		"KAFKA_NODE_ID":                        "1",
		"KAFKA_PROCESS_ROLES":                  "broker,controller",
		"KAFKA_LISTENERS":                      fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", port, controllerPort),
		"KAFKA_ADVERTISED_LISTENERS":           fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", port),
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"KAFKA_CONTROLLER_LISTENER_NAMES":      "CONTROLLER",
		"KAFKA_CONTROLLER_QUORUM_VOTERS":       fmt.Sprintf("1@127.0.0.1:%d", controllerPort),
		"KAFKA_INTER_BROKER_LISTENER_NAME":     "PLAINTEXT",
		"KAFKA_LOG_DIRS":                       "/tmp/kraft-combined-logs",
		"KAFKA_NUM_PARTITIONS":                 strconv.Itoa(kafkaPartitions),
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":      "false",
		// A single broker cannot replicate its internal topics.
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":         "0",
		"KAFKA_HEAP_OPTS":                                "-Xmx512m -Xms512m",
	}
}

// newClusterID returns a KRaft cluster id: a UUID's 16 bytes in URL-safe
// base64 without padding.
func newClusterID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// StartKafka starts a broker from the image the environment chooses
// (USERS_TEST_KAFKA_IMAGE, or the local stand-in when no registry answers).
func StartKafka(ctx context.Context) (*Kafka, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	_, image := Images()
	return startKafka(ctx, image)
}

func startKafka(ctx context.Context, image string) (*Kafka, error) {
	image, err := resolveImage(ctx, image, KafkaImageEnv, LocalKfakeImage)
	if err != nil {
		return nil, err
	}
	return withRetries(ctx, startAttempts, func() (*Kafka, error) { return tryStartKafka(ctx, image) })
}

func tryStartKafka(ctx context.Context, image string) (*Kafka, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	k := &Kafka{Image: image, Flavor: kafkaFlavor(image), Port: ports[0]}
	if k.Flavor == FlavorKafka {
		k.ControllerPort = ports[1]
	}
	ready := readiness{
		what:    fmt.Sprintf("broker %s on %s", image, k.addr()),
		timeout: kafkaStartTimeout,
		check:   k.ping,
	}
	c, err := runContainer(ctx, image, "kafka", ready,
		testcontainers.WithEnv(kafkaEnv(k.Flavor, k.Port, k.ControllerPort, newClusterID())),
	)
	if err != nil {
		return nil, err
	}
	k.container = c
	return k, nil
}

func (k *Kafka) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(k.Port)) }

// Brokers are the bootstrap servers (one: 127.0.0.1:port).
func (k *Kafka) Brokers() []string {
	if k.seeds != nil {
		return k.seeds
	}
	return []string{k.addr()}
}

// Container is the running container.
func (k *Kafka) Container() *testcontainers.DockerContainer { return k.container }

// Stop stops the broker (SIGTERM, then SIGKILL after timeout) and keeps its
// container, so that Start brings it back with its log on the same port.
func (k *Kafka) Stop(ctx context.Context, timeout time.Duration) error {
	if err := k.container.Stop(ctx, &timeout); err != nil {
		return fmt.Errorf("stop broker: %w", err)
	}
	return nil
}

// Start starts a stopped broker again and waits until it answers.
func (k *Kafka) Start(ctx context.Context) error {
	if err := k.container.Start(ctx); err != nil {
		return fmt.Errorf("restart broker: %w\n--- container log ---\n%s", err, logTail(context.WithoutCancel(ctx), k.container, 30))
	}
	return nil
}

func (k *Kafka) terminate(ctx context.Context) error {
	if k == nil {
		return nil
	}
	return testcontainers.TerminateContainer(k.container, testcontainers.StopContext(ctx))
}

func (k *Kafka) client() (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(k.Brokers()...), kgo.RequestRetries(0))
}

// ping asks for cluster metadata: the broker is ready when it names itself
// and a controller.
func (k *Kafka) ping(ctx context.Context) error {
	cl, err := k.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if len(resp.Brokers) == 0 || resp.ControllerID < 0 {
		return fmt.Errorf("metadata names %d brokers and controller %d", len(resp.Brokers), resp.ControllerID)
	}
	return nil
}

// CreateTopic creates a topic with a replication factor of 1 and waits
// until every partition has a leader.
func (k *Kafka) CreateTopic(ctx context.Context, name string, partitions int32) error {
	cl, err := k.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		err = createTopic(ctx, cl, name, partitions)
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			break
		}
		if !kerr.IsRetriable(err) || !sleep(ctx, 100*time.Millisecond) {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
	}
	for {
		err = topicReady(ctx, cl, name, partitions)
		if err == nil {
			return nil
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("topic %s not ready: %w", name, err)
		}
	}
}

func createTopic(ctx context.Context, cl *kgo.Client, name string, partitions int32) error {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10_000
	topic := kmsg.NewCreateTopicsRequestTopic()
	topic.Topic = name
	topic.NumPartitions = partitions
	topic.ReplicationFactor = 1
	req.Topics = append(req.Topics, topic)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("create topics answered for %d topics", len(resp.Topics))
	}
	return kerr.ErrorForCode(resp.Topics[0].ErrorCode)
}

func topicReady(ctx context.Context, cl *kgo.Client, name string, partitions int32) error {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(name)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("metadata answered for %d topics", len(resp.Topics))
	}
	t := resp.Topics[0]
	if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
		return err
	}
	if int32(len(t.Partitions)) != partitions {
		return fmt.Errorf("%d of %d partitions", len(t.Partitions), partitions)
	}
	for _, p := range t.Partitions {
		if p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader", p.Partition)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// NewTopic creates a topic of its own for t. Topics are not deleted: the
// broker goes away with the test package.
func (k *Kafka) NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	name := uniqueName("t.", t.Name(), 200, '.')
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.CreateTopic(ctx, name, partitions); err != nil {
		t.Fatal(err)
	}
	return name
}
