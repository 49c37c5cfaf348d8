package gormstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/marketplace/usersvc/adapters/tlsfiles"
)

// TLSFiles are a MySQL connection's PEM files (DATABASE_TLS_CA,
// DATABASE_TLS_CERT, DATABASE_TLS_KEY). PostgreSQL takes the same files as
// libpq's URL parameters instead (sslrootcert, sslcert, sslkey with
// sslmode=verify-full), so these are refused with a postgres URL rather
// than silently ignored.
type TLSFiles = tlsfiles.Files

// mysqlTLS applies DATABASE_TLS_* and the URL's tls parameter to cfg.
// Settings that would not verify the server are refused: tls=skip-verify
// and tls=preferred (which also falls back to plain text).
func mysqlTLS(cfg *mysql.Config, urlTLS string, hasURLTLS bool, files TLSFiles, host string) error {
	switch strings.ToLower(urlTLS) {
	case "skip-verify", "preferred":
		return fmt.Errorf("DATABASE_URL: tls=%s does not verify the server; give its CA in DATABASE_TLS_CA (with tls unset) or use tls=true", urlTLS)
	}
	if !files.Set() {
		return nil
	}
	if hasURLTLS {
		return errors.New("DATABASE_URL: drop its tls parameter when DATABASE_TLS_CA/CERT/KEY are set (they configure TLS)")
	}
	tc, err := files.ClientConfig("DATABASE_TLS", host)
	if err != nil {
		return err
	}
	// Registered under a name derived from the files and the host, so the
	// same settings parsed twice (validation, then Open) share one entry and
	// different stores in one process never overwrite each other's.
	sum := sha256.Sum256([]byte(files.CA + "\x00" + files.Cert + "\x00" + files.Key + "\x00" + host))
	name := "usersvc-" + hex.EncodeToString(sum[:8])
	if err := mysql.RegisterTLSConfig(name, tc); err != nil {
		return fmt.Errorf("DATABASE_TLS: %w", err)
	}
	cfg.TLSConfig = name
	cfg.TLS = tc.Clone()
	return nil
}
