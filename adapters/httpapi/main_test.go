package httpapi

import (
	"testing"

	"github.com/marketplace/usersvc/test/containers"
)

// Servers come from test/containers, started on first use and removed when
// the package ends: only the test of two replicas sharing their rate limits
// asks for one (a Redis container, or USERSVC_TEST_REDIS_URL); every other
// test here needs nothing but httptest.
func TestMain(m *testing.M) { containers.RunTests(m) }
