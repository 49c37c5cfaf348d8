// Package kafka publishes the service's events to Kafka with
// confluent-kafka-go (librdkafka, cgo) and reads them back for
// `usersvc events tail`.
//
// Messages follow the CloudEvents Kafka protocol binding in binary mode: the
// value is the event contract JSON, the key is the user id, and the
// attributes are headers (ce_specversion, ce_id, ce_type, ce_source,
// ce_subject, ce_time, content-type). Each delete event is followed by a
// tombstone: the same key, a null value and no headers.
package kafka

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Defaults for zero Config fields.
const (
	DefaultTopic        = "users-events"
	DefaultSource       = "usersvc"
	DefaultFlushTimeout = 10 * time.Second
)

// Config says where and how to publish.
type Config struct {
	// Brokers (KAFKA_BROKERS) are the bootstrap servers, host:port.
	Brokers []string
	// Topic (KAFKA_TOPIC) receives every event; it must exist.
	Topic string
	// Source (EVENT_SOURCE) is the CloudEvents source, header ce_source.
	Source string
	// Extra (KAFKA_CONFIG) holds more librdkafka properties, e.g. SASL and
	// TLS settings; see ParseExtraConfig. Keys that would weaken delivery
	// guarantees are refused (see reservedKeys).
	Extra map[string]string
	// FlushTimeout bounds the flush on Close when the context has no deadline.
	FlushTimeout time.Duration
	// NoTombstones (KAFKA_TOMBSTONES=false) stops the tombstone that
	// otherwise follows every delete event (see Publisher.Publish). The
	// zero value publishes them, so a compacted topic forgets a deleted user.
	NoTombstones bool
}

func (c Config) withDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.FlushTimeout <= 0 {
		c.FlushTimeout = DefaultFlushTimeout
	}
	return c
}

// reservedKeys are librdkafka properties the adapter owns: changing them
// through KAFKA_CONFIG would lose or reorder events, auto-create topics, or
// break the Go client's channels.
var reservedKeys = map[string]string{
	"bootstrap.servers":        "set KAFKA_BROKERS instead",
	"metadata.broker.list":     "set KAFKA_BROKERS instead",
	"enable.idempotence":       "the producer is always idempotent",
	"acks":                     "the producer always waits for all in-sync replicas",
	"request.required.acks":    "the producer always waits for all in-sync replicas",
	"allow.auto.create.topics": "the service never creates topics",
	"group.id":                 "events tail uses its own throw-away group",
	"enable.auto.commit":       "events tail never commits offsets",
}

// verifyingKeys are librdkafka properties that would switch off the checks
// TLS is for: the broker's certificate chain, its host name, or the
// signature of an OAUTHBEARER token. An on-path attacker could then read
// every event and the SASL password. Each maps to the only values accepted
// (compared case-insensitively); leaving the key unset keeps librdkafka's
// verifying default.
var verifyingKeys = map[string][]string{
	"enable.ssl.certificate.verification":   {"true", "1"},
	"ssl.endpoint.identification.algorithm": {"https"},
	"enable.sasl.oauthbearer.unsecure.jwt":  {"false", "0"},
}

// Validate reports every configuration error, naming the environment
// variable to fix.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS: no broker given"))
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil || strings.TrimSpace(b) != b {
			errs = append(errs, fmt.Errorf("KAFKA_BROKERS: %q is not host:port", b))
		}
	}
	if !validTopic(c.Topic) {
		errs = append(errs, fmt.Errorf("KAFKA_TOPIC: %q is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)", c.Topic))
	}
	if c.Source == "" || strings.ContainsAny(c.Source, " \t\r\n") {
		errs = append(errs, fmt.Errorf("EVENT_SOURCE: %q must be a non-empty URI reference without spaces", c.Source))
	}
	for k := range c.Extra {
		if why, ok := reservedKeys[k]; ok {
			errs = append(errs, fmt.Errorf("KAFKA_CONFIG: %s may not be set: %s", k, why))
		}
		if strings.HasPrefix(k, "go.") {
			errs = append(errs, fmt.Errorf("KAFKA_CONFIG: %s may not be set: go.* properties are the adapter's", k))
		}
		if allowed, ok := verifyingKeys[k]; ok && !slices.Contains(allowed, strings.ToLower(c.Extra[k])) {
			errs = append(errs, fmt.Errorf("KAFKA_CONFIG: %s=%s would turn off TLS verification; give the broker's CA with ssl.ca.location instead (allowed: %s)",
				k, c.Extra[k], strings.Join(allowed, ", ")))
		}
	}
	return errors.Join(errs...)
}

func validTopic(t string) bool {
	if t == "" || len(t) > 249 || t == "." || t == ".." {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ParseExtraConfig reads KAFKA_CONFIG: comma-separated key=value pairs
// ("security.protocol=SASL_SSL,sasl.mechanism=PLAIN"). Spaces around keys
// and values are trimmed; a value may contain "\," for a literal comma and
// "\\" for a backslash. An empty string gives an empty map.
func ParseExtraConfig(s string) (map[string]string, error) {
	out := map[string]string{}
	for i, item := range splitUnescaped(s) {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("KAFKA_CONFIG: item %d %q is not key=value", i+1, redact(item))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("KAFKA_CONFIG: %s is set twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// splitUnescaped splits on commas not preceded by a backslash and removes
// the escapes.
func splitUnescaped(s string) []string {
	var items []string
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s) && (s[i+1] == ',' || s[i+1] == '\\'):
			b.WriteByte(s[i+1])
			i++
		case c == ',':
			items = append(items, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(items, b.String())
}

// redact keeps a malformed item's key-ish prefix only: it may hold a secret.
func redact(item string) string {
	if len(item) > 12 {
		return item[:12] + "…"
	}
	return item
}

// producerConfig is the librdkafka configuration of the publisher.
func (c Config) producerConfig() ckafka.ConfigMap {
	m := ckafka.ConfigMap{
		"bootstrap.servers":        strings.Join(c.Brokers, ","),
		"client.id":                c.Source,
		"enable.idempotence":       true,
		"acks":                     "all",
		"allow.auto.create.topics": false,
		// Batching: a relay batch is produced at once, so a short linger
		// fills large compressed batches without adding visible latency.
		"linger.ms":        5,
		"compression.type": "lz4",
		// Same key-to-partition mapping as the Java client, so producers in
		// other languages keep a user's events in one partition too.
		"partitioner":            "murmur2_random",
		"go.logs.channel.enable": true,
		// Delivery reports go to per-call channels; their key and value are
		// not needed back.
		"go.delivery.report.fields": "none",
		// confluent-kafka-go allocates both channels up front with 1,000,000
		// slots by default (24 MB of live heap, doubled into the GC goal).
		// Publish never uses the produce channel, and the events channel only
		// carries errors and stray reports, which watchEvents drains at once.
		"go.events.channel.size":  1000,
		"go.produce.channel.size": 1,
	}
	for k, v := range c.Extra {
		m[k] = v
	}
	return m
}

// consumerConfig is the librdkafka configuration of events tail.
func (c Config) consumerConfig() ckafka.ConfigMap {
	m := ckafka.ConfigMap{
		"bootstrap.servers":        strings.Join(c.Brokers, ","),
		"client.id":                c.Source + "-events-tail",
		"group.id":                 c.Source + "-events-tail-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"enable.auto.commit":       false,
		"enable.auto.offset.store": false,
		"allow.auto.create.topics": false,
		"go.logs.channel.enable":   true,
	}
	for k, v := range c.Extra {
		m[k] = v
	}
	return m
}
