// Command kfakebroker runs a single-broker, Kafka-protocol-compatible stand-in
// (github.com/twmb/franz-go/pkg/kfake) for integration tests on machines that
// cannot pull the real apache/kafka image. It is not Kafka: it speaks the
// protocol well enough for clients, keeps its log in KFAKE_DATA_DIR so a
// stopped and restarted container keeps what it acknowledged, and listens on
// 127.0.0.1 only (it runs with host networking and advertises that address).
//
// Environment:
//
//	KFAKE_PORT          port to listen on (required; choose a free one)
//	KFAKE_SEED_TOPICS   comma-separated topics to create at first start
//	KFAKE_PARTITIONS    partitions of seeded and auto-created topics (default 3)
//	KFAKE_DATA_DIR      persistence directory; empty keeps everything in memory
//	KFAKE_AUTO_CREATE   create unknown topics on metadata requests, like Kafka's
//	                    auto.create.topics.enable (default true)
//	KFAKE_LOG_LEVEL     none, error, warn, info or debug (default warn)
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kfakebroker:", err)
		os.Exit(1)
	}
}

func run() error {
	opts, port, err := options(os.Getenv)
	if err != nil {
		return err
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start broker on port %d: %w", port, err)
	}
	// Test harnesses wait for this line or for a metadata answer.
	fmt.Printf("kfakebroker ready on %s\n", strings.Join(cluster.ListenAddrs(), ","))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	sig := <-stop
	// Close flushes the persisted log, which is what makes a restart lossless.
	cluster.Close()
	fmt.Printf("kfakebroker stopped by %v\n", sig)
	return nil
}

// options turns the environment into kfake options.
func options(getenv func(string) string) ([]kfake.Opt, int, error) {
	port, err := intVar(getenv, "KFAKE_PORT", 0)
	if err != nil {
		return nil, 0, err
	}
	if port <= 0 || port > 65535 {
		return nil, 0, errors.New("KFAKE_PORT must be set to a free port (1-65535)")
	}
	partitions, err := intVar(getenv, "KFAKE_PARTITIONS", 3)
	if err != nil {
		return nil, 0, err
	}
	if partitions < 1 {
		return nil, 0, errors.New("KFAKE_PARTITIONS must be at least 1")
	}
	level, err := logLevel(getenv("KFAKE_LOG_LEVEL"))
	if err != nil {
		return nil, 0, err
	}

	opts := []kfake.Opt{
		kfake.Ports(port), // one broker, listening on 127.0.0.1:port
		kfake.ClusterID("usersvc-test"),
		kfake.DefaultNumPartitions(partitions),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)),
	}
	if auto := getenv("KFAKE_AUTO_CREATE"); auto == "" || auto == "true" || auto == "1" {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if dir := getenv("KFAKE_DATA_DIR"); dir != "" {
		opts = append(opts, kfake.DataDir(dir))
	}
	var topics []string
	for _, t := range strings.Split(getenv("KFAKE_SEED_TOPICS"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			topics = append(topics, t)
		}
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(partitions), topics...))
	}
	return opts, port, nil
}

func intVar(getenv func(string) string, name string, def int) (int, error) {
	s := getenv(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: not a number", name, s)
	}
	return n, nil
}

func logLevel(s string) (kfake.LogLevel, error) {
	switch strings.ToLower(s) {
	case "", "warn":
		return kfake.LogLevelWarn, nil
	case "none":
		return kfake.LogLevelNone, nil
	case "error":
		return kfake.LogLevelError, nil
	case "info":
		return kfake.LogLevelInfo, nil
	case "debug":
		return kfake.LogLevelDebug, nil
	}
	return 0, fmt.Errorf("KFAKE_LOG_LEVEL=%q: want none, error, warn, info or debug", s)
}
