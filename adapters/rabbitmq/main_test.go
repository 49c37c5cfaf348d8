package rabbitmq_test

import (
	"testing"

	"github.com/marketplace/usersvc/test/containers"
)

// Servers come from test/containers, started on first use and removed
// when the package ends: the publisher's tests run against a RabbitMQ container of this test process, each on a vhost of its own (or against USERSVC_TEST_AMQP_URL).
func TestMain(m *testing.M) { containers.RunTests(m) }
