//go:build tools

// Package deps pins modules that the adapters are being built on, so that
// parallel work does not race on go.mod. Removed once every import is real.
package deps

import (
	_ "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	_ "github.com/gin-gonic/gin"
	_ "github.com/glebarez/sqlite"
	_ "github.com/google/uuid"
	_ "github.com/hashicorp/golang-lru/v2/expirable"
	_ "github.com/maxmind/mmdbwriter"
	_ "github.com/oschwald/maxminddb-golang/v2"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/testcontainers/testcontainers-go"
	_ "github.com/testcontainers/testcontainers-go/wait"
	_ "github.com/twmb/franz-go/pkg/kfake"
	_ "github.com/twmb/franz-go/pkg/kgo"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/sync/singleflight"
	_ "gorm.io/driver/mysql"
	_ "gorm.io/gorm"
)
