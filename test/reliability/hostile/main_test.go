package hostile_test

import (
	"testing"

	"github.com/marketplace/usersvc/test/containers"
)

// Servers come from test/containers, started on first use and removed
// when the package ends: the MariaDB runs use a MySQL-compatible container of this test process (or USERSVC_TEST_MYSQL_URL).
func TestMain(m *testing.M) { containers.RunTests(m) }
