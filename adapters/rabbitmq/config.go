// Package rabbitmq publishes the service's events to a RabbitMQ topic
// exchange with github.com/rabbitmq/amqp091-go, and reads them back for
// `usersvc events tail`.
//
// Messages follow the CloudEvents AMQP protocol binding in binary mode: the
// body is the event contract JSON (byte for byte the Kafka value), the
// content-type property is application/json, and the other attributes are
// application properties (AMQP 0-9-1 headers) named with the binding's
// "cloudEvents:" prefix: cloudEvents:specversion, cloudEvents:id,
// cloudEvents:type, cloudEvents:source, cloudEvents:subject (the user id)
// and cloudEvents:time, all strings in their canonical form. The routing key
// is the event type (users.user.created, users.user.updated,
// users.user.deleted), so consumers bind what they need: "users.user.*" or
// "#" for everything.
package rabbitmq

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/marketplace/usersvc/adapters/redact"
	"github.com/marketplace/usersvc/adapters/tlsfiles"
)

// Defaults for zero Config fields.
const (
	DefaultURL            = "amqp://guest:guest@localhost:5672/" //nolint:gosec // G101: RabbitMQ's well-known local-only default account
	DefaultExchange       = "users-events"
	DefaultSource         = "usersvc"
	DefaultDialTimeout    = 5 * time.Second
	DefaultConfirmTimeout = 30 * time.Second
	DefaultCloseTimeout   = 10 * time.Second
)

// Config says where and how to publish.
type Config struct {
	// URL (AMQP_URL) is the broker, amqp:// or amqps://, with credentials
	// and virtual host. It holds a password: never log it.
	URL string
	// Exchange (EVENT_EXCHANGE) is the topic exchange the events go to. The
	// publisher declares it (durable topic) and never creates queues.
	Exchange string
	// Source (EVENT_SOURCE) is the CloudEvents source, cloudEvents:source.
	Source string
	// DialTimeout bounds one connection attempt (TCP, TLS and AMQP
	// handshakes).
	DialTimeout time.Duration
	// ConfirmTimeout bounds how long one Publish waits for the broker's
	// confirms when its context has no earlier deadline: the relay's
	// context lives as long as the process.
	ConfirmTimeout time.Duration
	// CloseTimeout bounds Close when its context has no deadline.
	CloseTimeout time.Duration
	// TLS (AMQP_TLS_CA, AMQP_TLS_CERT, AMQP_TLS_KEY) are the broker's CA
	// and an optional client certificate for an amqps:// URL; with none,
	// amqps:// verifies against the system's roots.
	TLS tlsfiles.Files
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Exchange == "" {
		c.Exchange = DefaultExchange
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.ConfirmTimeout <= 0 {
		c.ConfirmTimeout = DefaultConfirmTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	return c
}

// Validate reports every configuration error, naming the environment
// variable to fix; zero fields stand for their defaults. It never shows the
// URL's password.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if uri, err := amqp.ParseURI(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("AMQP_URL %s: %s", Redact(c.URL), redactIn(err.Error(), c.URL)))
	} else if c.TLS.Set() && uri.Scheme != "amqps" {
		errs = append(errs, fmt.Errorf("AMQP_TLS_CA/CERT/KEY need an amqps:// AMQP_URL (got %s)", Redact(c.URL)))
	} else if _, err := c.tlsConfig(); err != nil {
		errs = append(errs, err)
	}
	if err := validExchange(c.Exchange); err != nil {
		errs = append(errs, fmt.Errorf("EVENT_EXCHANGE: %q %w", c.Exchange, err))
	}
	if c.Source == "" || strings.ContainsAny(c.Source, " \t\r\n") {
		errs = append(errs, fmt.Errorf("EVENT_SOURCE: %q must be a non-empty URI reference without spaces", c.Source))
	}
	return errors.Join(errs...)
}

// tlsConfig is the client TLS of an amqps:// URL (nil for amqp://): the
// broker's certificate is always verified, against AMQP_TLS_CA when set.
func (c Config) tlsConfig() (*tls.Config, error) {
	uri, err := amqp.ParseURI(c.URL)
	if err != nil || uri.Scheme != "amqps" {
		return nil, err
	}
	return c.TLS.ClientConfig("AMQP_TLS", uri.Host)
}

// dialConfig is the amqp091 configuration of one connection.
func (c Config) dialConfig(name string) (amqp.Config, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return amqp.Config{}, err
	}
	return amqp.Config{
		Dial:            amqp.DefaultDial(c.DialTimeout),
		TLSClientConfig: tc,
		Properties:      amqp.Table{"connection_name": c.Source + " " + name},
	}, nil
}

// validExchange checks an exchange name as RabbitMQ does (at most 255
// bytes of letters, digits, '-', '_', '.' and ':'), refusing the default
// exchange "" (it cannot route by topic) and the reserved "amq." prefix.
func validExchange(name string) error {
	switch {
	case name == "":
		return errors.New("is empty: the default exchange cannot route by topic")
	case len(name) > 255:
		return errors.New("is longer than 255 bytes")
	case strings.HasPrefix(name, "amq."):
		return errors.New(`starts with "amq.", which RabbitMQ reserves`)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return fmt.Errorf("has %q: use letters, digits, '-', '_', '.' and ':'", r)
		}
	}
	return nil
}

// Redact hides the password of an AMQP URL, for logs and errors.
func Redact(raw string) string { return redact.URL(raw) }

// redactIn removes the URL and its secrets from a library message.
func redactIn(msg, raw string) string {
	return redact.Text(strings.ReplaceAll(msg, raw, Redact(raw)), redact.Secrets(raw)...)
}
