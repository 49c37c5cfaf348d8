package main

import (
	"testing"

	"github.com/marketplace/usersvc/test/containers"
)

// The smoke run's MySQL-compatible server is a container of this test
// process (or USERSVC_TEST_MYSQL_URL), removed when the package ends.
func TestMain(m *testing.M) { containers.RunTests(m) }
