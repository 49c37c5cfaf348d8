// Package integration proves the adapters against real servers started in
// containers by test/containers: the GORM store on a MySQL-compatible server
// (migrations, email uniqueness, concurrent creates) and the Kafka publisher
// with the outbox relay on a Kafka-protocol broker (headers, order, a broker
// restart mid-stream). It needs a Docker engine and fails without one.
package integration
