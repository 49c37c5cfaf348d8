// Package containers starts the infrastructure of the integration and
// end-to-end suites with testcontainers-go: one MySQL-compatible database
// server and one Kafka-protocol broker per test package, shared by the
// package's tests and removed when it ends.
//
// A suite hands its TestMain to Main and isolates its tests with NewDatabase
// (a fresh database per test, dropped afterwards) and NewTopic (a unique
// topic):
//
//	func TestMain(m *testing.M) { containers.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		db := containers.NewDatabase(t)          // db.URL is a DATABASE_URL
//		topic := containers.NewTopic(t, 3)
//		brokers := containers.Shared(t).KafkaBrokers()
//		...
//	}
//
// A PostgreSQL server is started only for packages that ask for one:
// SharedPostgres (or NewPostgresDatabase) starts it on first use, and Main
// removes it with the others. Its image comes from USERS_TEST_POSTGRES_IMAGE
// (default postgres:16; usersvc-test/postgres:15, Debian's postgresql-15,
// from test/images/build.sh on machines without a registry). Both images
// take the official variables and PGPORT, so nothing here differs between
// them.
//
// Likewise RabbitMQ (SharedRabbitMQ, AMQPURL: USERS_TEST_RABBITMQ_IMAGE,
// default rabbitmq:3.13, local usersvc-test/rabbitmq:3.10) and Redis
// (SharedRedis, RedisURL: USERS_TEST_REDIS_IMAGE, default redis:7, local
// usersvc-test/redis:7.0, Debian's redis-server); USERSVC_TEST_AMQP_URL and
// USERSVC_TEST_REDIS_URL name existing servers instead. AMQPURL gives each
// test a vhost of its own (RabbitMQ.NewVhost), on which the broker's user
// has every permission, deleted with everything in it when the test ends;
// with USERSVC_TEST_AMQP_URL the tests share that URL's vhost instead.
// Vhosts are made and removed with rabbitmqctl in the container, which both
// images have, a batch per run: see vhosts.go for why and what it costs.
//
// StartService runs the service's own image (USERS_TEST_SERVICE_IMAGE,
// default usersvc:dev, built from deploy/Dockerfile) against them for
// end-to-end suites.
//
// Images come from USERS_TEST_MYSQL_IMAGE (default mysql:8.4) and
// USERS_TEST_KAFKA_IMAGE (default apache/kafka:3.9.0), so that on a machine
// with a registry the suites run against the upstream servers. Machines
// without one build local stand-ins with test/images/build.sh:
// usersvc-test/mariadb:10.11 and usersvc-test/kfake:dev (a Kafka-protocol
// broker built on kfake, not Kafka). What differs between these images
// (environment, command line, readiness) is decided here and nowhere else.
//
// Networking: every container uses the host's network with ports chosen free
// at run time and listens on 127.0.0.1 only. A testcontainers runtime
// provider registered by this package (selected through
// TESTCONTAINERS_PROVIDER) makes "host" the default network, so that no
// bridge network is ever created. When the Ryuk image is not present Ryuk is
// disabled (TESTCONTAINERS_RYUK_DISABLED=true); this package then removes its
// containers itself, including those left by a test process that was killed.
// An engine whose host network is not this machine's cannot serve these
// suites: rootless Docker (docker info says so) is refused before anything
// starts, and a server that refused every connection until its deadline is
// reported with a hint about engines in a VM (Docker Desktop's host
// networking option).
//
// Without a reachable Docker engine Main fails the package loudly: these
// suites never skip. `make test-unit` is the Docker-free target.
package containers
