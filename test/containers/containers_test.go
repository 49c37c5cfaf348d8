package containers

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestMain(m *testing.M) { Main(m) }

func TestFlavorsFollowImageNames(t *testing.T) {
	cases := []struct {
		image       string
		mysqlFlavor string
		kafkaFlavor string
	}{
		{"mysql:8.4", FlavorMySQL, FlavorKafka},
		{"docker.io/library/mysql:8.4.3", FlavorMySQL, FlavorKafka},
		{"mariadb:10.11", FlavorMariaDB, FlavorKafka},
		{"usersvc-test/mariadb:10.11", FlavorMariaDB, FlavorKafka},
		{"registry.example:5000/team/mariadb", FlavorMariaDB, FlavorKafka},
		{"apache/kafka:3.9.0", FlavorMySQL, FlavorKafka},
		{"usersvc-test/kfake:dev", FlavorMySQL, FlavorKfake},
	}
	for _, c := range cases {
		t.Run(c.image, func(t *testing.T) {
			if got := mysqlFlavor(c.image); got != c.mysqlFlavor {
				t.Errorf("mysqlFlavor = %q, want %q", got, c.mysqlFlavor)
			}
			if got := kafkaFlavor(c.image); got != c.kafkaFlavor {
				t.Errorf("kafkaFlavor = %q, want %q", got, c.kafkaFlavor)
			}
		})
	}
}

func TestMySQLSettings(t *testing.T) {
	cases := []struct {
		flavor     string
		wantArgs   []string
		unwantArgs []string
	}{
		{FlavorMySQL, []string{"--port=40001", "--bind-address=127.0.0.1", "--mysqlx=OFF", "--skip-log-bin"}, nil},
		{FlavorMariaDB, []string{"--port=40001", "--bind-address=127.0.0.1"}, []string{"--mysqlx=OFF", "--skip-log-bin"}},
	}
	for _, c := range cases {
		t.Run(c.flavor, func(t *testing.T) {
			env, args := mysqlSettings(c.flavor, 40001, "rootpw", "apppw")
			wantEnv := map[string]string{
				"MYSQL_ROOT_PASSWORD": "rootpw", "MYSQL_DATABASE": "usersvc", "MYSQL_USER": "usersvc",
				"MYSQL_PASSWORD": "apppw", "MYSQL_TCP_PORT": "40001",
			}
			for k, v := range wantEnv {
				if env[k] != v {
					t.Errorf("env %s = %q, want %q", k, env[k], v)
				}
			}
			for _, a := range c.wantArgs {
				if !slices.Contains(args, a) {
					t.Errorf("args %q lack %s", args, a)
				}
			}
			for _, a := range c.unwantArgs {
				if slices.Contains(args, a) {
					t.Errorf("args %q contain %s, which %s does not know", args, a, c.flavor)
				}
			}
		})
	}
}

func TestKafkaEnv(t *testing.T) {
	t.Run("kafka", func(t *testing.T) {
		env := kafkaEnv(FlavorKafka, 40001, 40002, "cid")
		want := map[string]string{
			"CLUSTER_ID":                             "cid",
			"KAFKA_PROCESS_ROLES":                    "broker,controller",
			"KAFKA_LISTENERS":                        "PLAINTEXT://127.0.0.1:40001,CONTROLLER://127.0.0.1:40002",
			"KAFKA_ADVERTISED_LISTENERS":             "PLAINTEXT://127.0.0.1:40001",
			"KAFKA_CONTROLLER_QUORUM_VOTERS":         "1@127.0.0.1:40002",
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":        "false",
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s = %q, want %q", k, env[k], v)
			}
		}
	})
	t.Run("kfake", func(t *testing.T) {
		env := kafkaEnv(FlavorKfake, 40001, 0, "cid")
		want := map[string]string{"KFAKE_PORT": "40001", "KFAKE_AUTO_CREATE": "false"}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s = %q, want %q", k, env[k], v)
			}
		}
		for k := range env {
			if strings.HasPrefix(k, "KAFKA_") {
				t.Errorf("kfake gets Kafka variable %s", k)
			}
		}
	})
	if id := newClusterID(); !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(id) {
		t.Errorf("cluster id %q is not a base64 UUID", id)
	}
}

func TestUniqueName(t *testing.T) {
	cases := []struct {
		name, prefix, test string
		max                int
		sep                byte
		pattern            string
	}{
		{"database", "t_", "TestX/sub case#01", 64, '_', `^t_testx_sub_case_01_[0-9a-f]{8}$`},
		{"topic", "t.", "TestX/sub case", 200, '.', `^t\.testx\.sub\.case\.[0-9a-f]{8}$`},
		{"long name is cut", "t_", strings.Repeat("a", 300), 64, '_', `^t_a{53}_[0-9a-f]{8}$`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := uniqueName(c.prefix, c.test, c.max, c.sep)
			if !regexp.MustCompile(c.pattern).MatchString(got) || len(got) > c.max {
				t.Errorf("uniqueName = %q, want %s and at most %d bytes", got, c.pattern, c.max)
			}
			if again := uniqueName(c.prefix, c.test, c.max, c.sep); again == got {
				t.Errorf("two names for one test are both %q", got)
			}
		})
	}
}

func TestLastLines(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
	}
	for _, c := range cases {
		if got := lastLines(c.in, c.n); got != c.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// The database helper hands out empty databases of their own and drops them.
func TestNewDatabaseIsolatesAndDrops(t *testing.T) {
	env := Shared(t)
	var names []string
	for i := range 2 {
		t.Run(fmt.Sprint("db", i), func(t *testing.T) {
			db := NewDatabase(t)
			names = append(names, db.Name)
			pool := openDSN(t, db.DSN)
			var tables int
			if err := pool.QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Fatalf("new database %s has %d tables", db.Name, tables)
			}
			if _, err := pool.Exec("CREATE TABLE t (id INT PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(db.URL, "mysql://root:") || !strings.HasSuffix(db.URL, "/"+db.Name) {
				t.Errorf("URL %q is not a DATABASE_URL of %s", db.URL, db.Name)
			}
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("database names %q are not two distinct names", names)
	}
	for _, name := range names {
		var n int
		err := env.MySQL.Root().QueryRow("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test", name)
		}
	}
}

// The image honours MYSQL_DATABASE, MYSQL_USER and MYSQL_PASSWORD: the
// account exists, owns its database and nothing else.
func TestAppAccountFromImageVariables(t *testing.T) {
	env := Shared(t)
	pool := openDSN(t, env.MySQL.config(mysqlAppUser, env.MySQL.appPassword, mysqlAppDatabase).FormatDSN())
	if _, err := pool.Exec("CREATE TABLE IF NOT EXISTS app_check (id INT PRIMARY KEY)"); err != nil {
		t.Fatalf("app account cannot create a table in %s: %v", mysqlAppDatabase, err)
	}
	if _, err := pool.Exec("CREATE DATABASE app_account_must_not_create_this"); err == nil {
		t.Error("app account could create a database: it has more than its own database")
	}
	if !strings.HasPrefix(env.MySQL.AppURL(), "mysql://usersvc:") {
		t.Errorf("AppURL %q", env.MySQL.AppURL())
	}
}

// Containers share the host's network namespace, listen on loopback only,
// and no network is created for them.
func TestLoopbackOnlyAndNoNetworkCreated(t *testing.T) {
	env := Shared(t)
	ctx := context.Background()
	for _, c := range []struct {
		role string
		id   string
		port int
	}{
		{"mysql", env.MySQL.Container().GetContainerID(), env.MySQL.Port},
		{"kafka", env.Kafka.Container().GetContainerID(), env.Kafka.Port},
	} {
		t.Run(c.role, func(t *testing.T) {
			inspect, err := engine.ContainerInspect(ctx, c.id, client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if mode := inspect.Container.HostConfig.NetworkMode; mode != "host" {
				t.Errorf("network mode %q, want host", mode)
			}
			addrs := listenAddrs(t, c.port)
			if len(addrs) == 0 {
				t.Fatalf("nothing listens on port %d", c.port)
			}
			for _, a := range addrs {
				if a != "0100007F" {
					t.Errorf("port %d listens on hex address %s, not 127.0.0.1", c.port, a)
				}
			}
		})
	}
	networks, err := engine.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range networks.Items {
		if n.Name == "reaper_default" || n.Labels["org.testcontainers"] == "true" {
			t.Errorf("a network was created for the tests: %s (%s)", n.Name, n.Driver)
		}
	}
}

// listenAddrs returns the hex local addresses of IPv4 and IPv6 sockets
// listening on port, from /proc/net/tcp{,6} (containers share our network
// namespace).
func listenAddrs(t *testing.T, port int) []string {
	t.Helper()
	var addrs []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			host, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); ok && err == nil && int(p) == port {
				addrs = append(addrs, host)
			}
		}
		_ = f.Close()
	}
	return addrs
}

func TestNewTopicRoundTrip(t *testing.T) {
	env := Shared(t)
	topic := NewTopic(t, 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaBrokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("1")}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the record did not come back within 20s")
		}
		if recs := fetches.Records(); len(recs) > 0 {
			got := recs[0]
			if string(got.Value) != "v" || len(got.Headers) != 1 || string(got.Headers[0].Value) != "1" {
				t.Fatalf("got value %q headers %v", got.Value, got.Headers)
			}
			return
		}
	}
}

// Topics are not auto-created, as in production: producing to one that
// nobody created fails.
func TestTopicsAreNotAutoCreated(t *testing.T) {
	env := Shared(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaBrokers()...), kgo.RecordDeliveryTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: uniqueName("t.", "missing", 100, '.'), Value: []byte("x")}).FirstErr()
	if err == nil {
		t.Fatal("producing to a topic nobody created succeeded: the broker auto-creates topics")
	}
}

func openDSN(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	pool, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	if err := pool.Ping(); err != nil {
		t.Fatal(err)
	}
	return pool
}

// The service's own image runs on the host's network against both
// containers: it answers on its loopback port, stores a user in its
// database and publishes the event to its topic.
func TestStartServiceAgainstBothContainers(t *testing.T) {
	env := Shared(t)
	db := NewDatabase(t)
	topic := NewTopic(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	svc, err := StartService(ctx, map[string]string{
		"DATABASE_URL":  db.URL,
		"EVENT_BUS":     "kafka",
		"KAFKA_BROKERS": strings.Join(env.KafkaBrokers(), ","),
		"KAFKA_TOPIC":   topic,
		"GEO_PROVIDER":  "static",
		"GEO_STATIC":    "127.0.0.0/8=CH",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Terminate(context.Background()) })

	body := strings.NewReader(`{"first_name":"Ada","last_name":"Lovelace","email":"ada@example.com","password":"correct horse"}`)
	res, err := http.Post(svc.URL()+"/api/v1/users", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /api/v1/users: %s, want 201", res.Status)
	}
	var stored int
	if err := openDSN(t, db.DSN).QueryRow("SELECT COUNT(*) FROM users WHERE email = 'ada@example.com'").Scan(&stored); err != nil || stored != 1 {
		t.Errorf("users with the email in the container's database: %d (%v), want 1", stored, err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(env.KafkaBrokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no event reached the topic")
		}
		if recs := fetches.Records(); len(recs) > 0 {
			if !strings.Contains(string(recs[0].Value), `"action":"create"`) {
				t.Fatalf("event %s is not the creation", recs[0].Value)
			}
			return
		}
	}
}

func TestRabbitMQSettings(t *testing.T) {
	env := rabbitSettings(40001, 40002, 40003, "pw")
	want := map[string]string{
		"RABBITMQ_NODE_PORT": "40001", "RABBITMQ_DIST_PORT": "40002", "ERL_EPMD_PORT": "40003",
		"RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "ERL_EPMD_ADDRESS": "127.0.0.1",
		"RABBITMQ_DEFAULT_USER": "usersvc", "RABBITMQ_DEFAULT_PASS": "pw",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

// The package's RabbitMQ starts on first use, takes none of the machine's
// broker's ports, listens on loopback only and accepts its URL.
func TestSharedRabbitMQ(t *testing.T) {
	r := SharedRabbitMQ(t)
	if r.Port == 5672 {
		t.Fatal("the container took 5672, the machine's own broker's port")
	}
	conn, err := amqp.Dial(r.URL())
	if err != nil {
		t.Fatalf("dial %s: %v", r.addr(), err)
	}
	ch, err := conn.Channel()
	if err == nil {
		_, err = ch.QueueDeclare("", false, true, true, false, nil)
	}
	_ = conn.Close()
	if err != nil {
		t.Fatalf("declare a queue: %v", err)
	}
	for _, a := range listenAddrs(t, r.Port) {
		if a != "0100007F" {
			t.Errorf("port %d listens on hex address %s, not 127.0.0.1", r.Port, a)
		}
	}
	if got := SharedRabbitMQ(t); got != r {
		t.Error("a second call started another broker")
	}
}

// Two vhosts of the broker do not see each other's exchanges, the user may
// declare in both, and a vhost is gone once its test ended.
func TestVhostsAreIsolatedAndDeleted(t *testing.T) {
	r := SharedRabbitMQ(t)
	exchange := "usersvc-test-" + randomHex(4)
	var first string
	t.Run("two vhosts", func(t *testing.T) {
		first = r.NewVhost(t)
		second := r.NewVhost(t)
		if first == second {
			t.Fatalf("two calls returned the same vhost %s", first)
		}
		if err := declareExchange(t, first, exchange, false); err != nil {
			t.Fatalf("declare %s in the first vhost: %v", exchange, err)
		}
		if err := declareExchange(t, first, exchange, true); err != nil {
			t.Fatalf("passive declare in the vhost that has it: %v", err)
		}
		var amqpErr *amqp.Error
		if err := declareExchange(t, second, exchange, true); !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
			t.Fatalf("passive declare of the first vhost's exchange in the second = %v, want 404 NOT_FOUND", err)
		}
		if err := declareExchange(t, second, exchange, false); err != nil {
			t.Fatalf("declare %s in the second vhost too: %v", exchange, err)
		}
	})
	if err := r.vhosts.wait(); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(first)
	if err == nil {
		_ = conn.Close()
		t.Fatalf("connected to %s after its test ended; want the vhost deleted", vhostOf(t, first))
	}
	if !strings.Contains(err.Error(), "vhost") {
		t.Errorf("dial a deleted vhost: %v; want an error naming the vhost", err)
	}
}

// AMQPURL gives a test one vhost, not the default one, for all its calls
// and its subtests; USERSVC_TEST_AMQP_URL, when set, as it is.
func TestAMQPURLIsTheTestsOwnVhost(t *testing.T) {
	if env := os.Getenv(AMQPURLEnv); env != "" {
		if got := AMQPURL(t); got != env {
			t.Errorf("AMQPURL = %s, want %s as it is", got, AMQPURLEnv)
		}
		return
	}
	u := AMQPURL(t)
	if v := vhostOf(t, u); v == "/" || !strings.HasPrefix(v, vhostPrefix) {
		t.Fatalf("AMQPURL's vhost is %q, want one of the test's own", v)
	}
	if again := AMQPURL(t); again != u {
		t.Errorf("a second call returned %s, want %s", again, u)
	}
	t.Run("subtest", func(t *testing.T) {
		if got := AMQPURL(t); got != u {
			t.Errorf("the subtest got %s, want its parent's %s", vhostOf(t, got), vhostOf(t, u))
		}
	})
	if err := declareExchange(t, u, "usersvc-test-"+randomHex(4), false); err != nil {
		t.Fatal(err)
	}
}

// declareExchange declares a durable topic exchange (passively: checks it
// exists) on a connection of its own to url.
func declareExchange(t *testing.T, url, name string, passive bool) error {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial vhost %s: %v", vhostOf(t, url), err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if passive {
		return ch.ExchangeDeclarePassive(name, amqp.ExchangeTopic, true, false, false, false, nil)
	}
	return ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil)
}

func vhostOf(t *testing.T, url string) string {
	t.Helper()
	u, err := amqp.ParseURI(url)
	if err != nil {
		t.Fatal(err)
	}
	return u.Vhost
}

// Without a TestMain that removes them, no server is started.
func TestLazyServerNeedsTheTestMain(t *testing.T) {
	owned.Store(false)
	defer owned.Store(true)
	l := &lazy[int]{what: "nothing", start: func(context.Context) (int, error) {
		t.Error("started without a TestMain")
		return 0, nil
	}}
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); l.get(ft) }()
	<-done
	if !strings.Contains(ft.msg, "containers.RunTests") {
		t.Errorf("message %q does not name containers.RunTests", ft.msg)
	}
}

// fatalRecorder records Fatalf's message and ends the goroutine as Fatalf
// does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestToolchainVersion(t *testing.T) {
	if got := toolchainVersion("module m\n\ngo 1.26.8\n\ntoolchain go1.27.3\n"); got != "1.27.3" {
		t.Errorf("toolchainVersion = %q, want 1.27.3", got)
	}
}
