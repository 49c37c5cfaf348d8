package ratelimit

import (
	"testing"

	"github.com/marketplace/usersvc/test/containers"
)

// The Redis limiter's tests get their server from test/containers: a
// container of this test process, started on first use and removed when
// the package ends (or USERSVC_TEST_REDIS_URL).
func TestMain(m *testing.M) { containers.RunTests(m) }
