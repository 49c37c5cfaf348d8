package tlsconn

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/marketplace/usersvc/adapters/rabbitmq"
	"github.com/marketplace/usersvc/adapters/tlsfiles"
	"github.com/marketplace/usersvc/domain"
	"github.com/marketplace/usersvc/test/containers"
	"github.com/marketplace/usersvc/test/testpki"
)

// TestRabbitMQWithAPrivateCA publishes through the RabbitMQ adapter over
// AMQPS to a broker that serves a certificate of the test's private CA and
// admits only clients with a certificate of that CA (AMQP_TLS_CA/CERT/KEY),
// and shows that every weaker connection is refused.
func TestRabbitMQWithAPrivateCA(t *testing.T) {
	pki := testpki.New(t, "usersvc test CA", "usersvc")
	rogue := testpki.New(t, "another CA", "usersvc")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := containers.StartRabbitMQTLS(ctx, containers.TLSServer{CA: pki.CA, Cert: pki.ServerCert, Key: pki.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Terminate(context.Background()) })
	good := tlsfiles.Files{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	const exchange, queue = "users-events-tls", "tls-consumer"

	// A consumer's queue on the exchange, set up over TLS: the publisher
	// only counts a message routed to a queue as delivered.
	tc, err := good.ClientConfig("AMQP_TLS", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.DialTLS(r.TLSURL("127.0.0.1"), tc)
	if err != nil {
		t.Fatalf("dial AMQPS with the CA and a client certificate: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", exchange, false, nil); err != nil {
		t.Fatal(err)
	}

	at := time.Now().UTC()
	u := domain.User{ID: 7, Email: "tls@example.com", FirstName: "Ada", LastName: "L", CreatedAt: at, UpdatedAt: at}
	msg, err := domain.NewEvent("01930000-0000-7000-8000-000000000001", domain.ActionCreate, u, nil, at).Message()
	if err != nil {
		t.Fatal(err)
	}
	publish := func(t *testing.T, url string, files tlsfiles.Files) error {
		t.Helper()
		p, err := rabbitmq.NewPublisher(rabbitmq.Config{URL: url, Exchange: exchange, TLS: files, DialTimeout: 5 * time.Second, ConfirmTimeout: 10 * time.Second}, nil)
		if err != nil {
			return err
		}
		defer p.Close(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		acked, err := p.Publish(ctx, []domain.Message{msg})
		if err == nil && acked != 1 {
			err = fmt.Errorf("%d messages confirmed, want 1", acked)
		}
		return err
	}

	t.Run("AMQP_TLS_CA with a client certificate", func(t *testing.T) {
		if err := publish(t, r.TLSURL("127.0.0.1"), good); err != nil {
			t.Fatalf("publish over AMQPS: %v", err)
		}
		d, ok, err := ch.Get(queue, true)
		if err != nil || !ok {
			t.Fatalf("the consumer's queue holds nothing (%v)", err)
		}
		if string(d.Body) != string(msg.Payload) {
			t.Errorf("delivered %s, want %s", d.Body, msg.Payload)
		}
	})
	refused := []struct {
		name  string
		url   string
		files tlsfiles.Files
	}{
		{"server certificate from another CA", r.TLSURL("127.0.0.1"), tlsfiles.Files{CA: rogue.CA, Cert: pki.ClientCert, Key: pki.ClientKey}},
		{"system roots only", r.TLSURL("127.0.0.1"), tlsfiles.Files{}},
		{"no client certificate", r.TLSURL("127.0.0.1"), tlsfiles.Files{CA: pki.CA}},
		{"client certificate of another CA", r.TLSURL("127.0.0.1"), tlsfiles.Files{CA: pki.CA, Cert: rogue.ClientCert, Key: rogue.ClientKey}},
		{"plain AMQP to the TLS listener", strings.Replace(r.TLSURL("127.0.0.1"), "amqps://", "amqp://", 1), tlsfiles.Files{}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			if err := publish(t, tc.url, tc.files); err == nil {
				t.Fatal("the publisher delivered")
			} else {
				t.Logf("refused as expected: %v", err)
			}
		})
	}
	if d, ok, _ := ch.Get(queue, true); ok {
		t.Errorf("a refused connection delivered %s", d.Body)
	}
}
