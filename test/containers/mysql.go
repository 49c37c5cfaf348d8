package containers

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/testcontainers/testcontainers-go"
)

// Database image settings.
const (
	MySQLImageEnv     = "USERS_TEST_MYSQL_IMAGE"
	DefaultMySQLImage = "mysql:8.4"
	LocalMariaDBImage = "usersvc-test/mariadb:10.11"
	mysqlStartTimeout = 2 * time.Minute // upstream mysql initialises its data directory first
	mysqlAppDatabase  = "usersvc"
	mysqlAppUser      = "usersvc"
	mysqlRootUser     = "root"
)

// Flavors of MySQL-compatible images, told apart by the image name.
const (
	FlavorMySQL   = "mysql"   // upstream mysql images
	FlavorMariaDB = "mariadb" // upstream mariadb images and usersvc-test/mariadb
)

// MySQL is a running MySQL-compatible server on 127.0.0.1.
type MySQL struct {
	Image  string
	Flavor string
	Port   int

	rootPassword string
	appPassword  string
	container    *testcontainers.DockerContainer
	root         *sql.DB
}

// mysqlFlavor decides from the image's repository name.
func mysqlFlavor(image string) string {
	repo, _, _ := strings.Cut(path.Base(image), ":")
	if strings.Contains(repo, "mariadb") {
		return FlavorMariaDB
	}
	return FlavorMySQL
}

// mysqlSettings returns the environment and server options of a container
// listening on 127.0.0.1:port. Every image understands the official
// variables; only the server options differ.
func mysqlSettings(flavor string, port int, rootPassword, appPassword string) (map[string]string, []string) {
	env := map[string]string{
		"MYSQL_ROOT_PASSWORD": rootPassword,
		"MYSQL_DATABASE":      mysqlAppDatabase,
		"MYSQL_USER":          mysqlAppUser,
		"MYSQL_PASSWORD":      appPassword,
		// The local image requires it; the servers read it as their default.
		"MYSQL_TCP_PORT": strconv.Itoa(port),
	}
	args := []string{
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--innodb-flush-log-at-trx-commit=2", // throwaway data: fast commits
	}
	if flavor == FlavorMySQL {
		args = append(args,
			// X Protocol would listen on 33060 of the host's network, which
			// two packages running at once would both want.
			"--mysqlx=OFF",
			"--skip-log-bin",
		)
	}
	return env, args
}

func startMySQL(ctx context.Context, image string) (*MySQL, error) {
	image, err := resolveImage(ctx, image, MySQLImageEnv, LocalMariaDBImage)
	if err != nil {
		return nil, err
	}
	return withRetries(ctx, startAttempts, func() (*MySQL, error) { return tryStartMySQL(ctx, image, nil) })
}

// tryStartMySQL starts one container; extraArgs go to the server and opts
// to the container (e.g. files).
func tryStartMySQL(ctx context.Context, image string, extraArgs []string, opts ...testcontainers.ContainerCustomizer) (*MySQL, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	m := &MySQL{
		Image:        image,
		Flavor:       mysqlFlavor(image),
		Port:         ports[0],
		rootPassword: randomHex(12),
		appPassword:  randomHex(12),
	}
	cfg := m.config(mysqlRootUser, m.rootPassword, "")
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	m.root = sql.OpenDB(connector)
	m.root.SetMaxIdleConns(2)

	env, args := mysqlSettings(m.Flavor, m.Port, m.rootPassword, m.appPassword)
	ready := readiness{
		what:    fmt.Sprintf("database %s on 127.0.0.1:%d", image, m.Port),
		timeout: mysqlStartTimeout,
		check:   func(ctx context.Context) error { return m.root.PingContext(ctx) },
	}
	c, err := runContainer(ctx, image, "mysql", ready, append([]testcontainers.ContainerCustomizer{
		testcontainers.WithEnv(env),
		testcontainers.WithCmdArgs(append(args, extraArgs...)...),
	}, opts...)...)
	if err != nil {
		_ = m.root.Close()
		return nil, err
	}
	m.container = c
	return m, nil
}

func (m *MySQL) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.Port)) }

func (m *MySQL) config(user, password, db string) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = user
	cfg.Passwd = password
	cfg.Net = "tcp"
	cfg.Addr = m.addr()
	cfg.DBName = db
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Timeout = 5 * time.Second
	return cfg
}

// URL is the DATABASE_URL of database db for the root account, in the
// service's format (mysql://user:pass@host:port/db).
func (m *MySQL) URL(db string) string {
	u := url.URL{Scheme: "mysql", User: url.UserPassword(mysqlRootUser, m.rootPassword), Host: m.addr(), Path: "/" + db}
	return u.String()
}

// DSN is the github.com/go-sql-driver/mysql DSN of database db for the root
// account, with parseTime=true and loc=UTC.
func (m *MySQL) DSN(db string) string {
	return m.config(mysqlRootUser, m.rootPassword, db).FormatDSN()
}

// AppURL is the DATABASE_URL of the database and account the image created
// from MYSQL_DATABASE, MYSQL_USER and MYSQL_PASSWORD (privileges on that
// database only).
func (m *MySQL) AppURL() string {
	u := url.URL{Scheme: "mysql", User: url.UserPassword(mysqlAppUser, m.appPassword), Host: m.addr(), Path: "/" + mysqlAppDatabase}
	return u.String()
}

// Root is a pool on the server as root, for test set-up and inspection.
func (m *MySQL) Root() *sql.DB { return m.root }

// Container is the running container, e.g. to stop it in a fault test.
func (m *MySQL) Container() *testcontainers.DockerContainer { return m.container }

func (m *MySQL) terminate(ctx context.Context) error {
	if m == nil {
		return nil
	}
	_ = m.root.Close()
	return testcontainers.TerminateContainer(m.container, testcontainers.StopContext(ctx))
}

// Database is an empty database of its own for one test.
type Database struct {
	Name string
	// URL is its DATABASE_URL (mysql://root:...@127.0.0.1:port/name).
	URL string
	// DSN is the go-sql-driver DSN of the same database.
	DSN string
}

// NewDatabase creates an empty database for t and drops it when t ends
// (after t's later cleanups, such as closing a store on it).
func (m *MySQL) NewDatabase(t testing.TB) Database {
	t.Helper()
	name := uniqueName("t_", t.Name(), 64, '_')
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.root.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := m.root.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return Database{Name: name, URL: m.URL(name), DSN: m.DSN(name)}
}
