// Package e2e is the end-to-end suite: it runs the service's own container
// image (usersvc:dev, built from deploy/Dockerfile) against a MySQL-compatible
// database container and a Kafka-protocol broker container started by
// test/containers, drives the HTTP API like a client on 127.0.0.1, and reads
// the events back with a real Kafka consumer (franz-go), checking them
// against the event contract written out literally in the tests, so that
// neither the API nor the events can drift without a failure here.
//
// The tests know the service only from the outside: its HTTP answers, its
// topic, its container log and (to learn what its password hashes look
// like) its users table.
package e2e
