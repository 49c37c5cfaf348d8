package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/marketplace/usersvc/adapters/gormstore"
)

// database is the benchmark's database: where the service and the raw
// baseline both point, and how to get rid of it afterwards.
type database struct {
	url     string // DATABASE_URL given to the service
	target  gormstore.Target
	drop    func(context.Context) error // nil when the database is not ours
	created bool
}

// prepareDatabase returns the database to use. With dbURL empty it creates
// (after dropping any leftover) the database name on the MySQL server at
// adminURL, and drops it again at the end unless keep is set; a kept
// database is reused by the next run with -keep.
func prepareDatabase(ctx context.Context, dbURL, adminURL, name string, keep bool) (*database, error) {
	if dbURL != "" {
		t, err := gormstore.ParseURL(dbURL)
		if err != nil {
			return nil, err
		}
		if t.Dialect == gormstore.DialectSQLite && t.Memory {
			return nil, errors.New("-db: sqlite://:memory: is private to one connection pool; give a file, e.g. sqlite:///tmp/load.db")
		}
		return &database{url: dbURL, target: t}, nil
	}
	if !validDatabaseName(name) {
		return nil, fmt.Errorf("-dbname %q: want letters, digits and _", name)
	}
	admin, err := openRawPool(adminURL, 1)
	if err != nil {
		return nil, fmt.Errorf("admin URL: %w", err)
	}
	defer admin.Close()
	adminTarget, err := gormstore.ParseURL(adminURL)
	if err != nil {
		return nil, err
	}
	dialect := adminTarget.Dialect
	if !keep {
		if _, err := admin.ExecContext(ctx, dropDatabaseSQL(dialect, name)); err != nil {
			return nil, fmt.Errorf("drop leftover database %s: %w", name, err)
		}
	}
	created, err := createDatabase(ctx, admin, dialect, name)
	if err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	t, err := gormstore.ParseURL(u.String())
	if err != nil {
		return nil, err
	}
	db := &database{url: u.String(), target: t, created: created}
	if !keep {
		db.drop = func(ctx context.Context) error {
			admin, err := openRawPool(adminURL, 1)
			if err != nil {
				return err
			}
			defer admin.Close()
			_, err = admin.ExecContext(ctx, dropDatabaseSQL(dialect, name))
			return err
		}
	}
	return db, nil
}

func validDatabaseName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// openRawPool opens a database/sql pool on a DATABASE_URL without GORM,
// for the raw baseline and for seeding. MySQL uses server-side prepared
// statements (no client-side interpolation); SQLite gets the connection
// settings the store uses.
func openRawPool(dbURL string, conns int) (*sql.DB, error) {
	t, err := gormstore.ParseURL(dbURL)
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	switch t.Dialect {
	case gormstore.DialectMySQL:
		cfg := t.MySQL.Clone()
		cfg.InterpolateParams = false
		cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Minute, 5*time.Minute // seeding and ANALYZE run long statements
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, err
		}
		db = sql.OpenDB(c)
	case gormstore.DialectPostgres:
		db = stdlib.OpenDB(*t.Postgres)
	case gormstore.DialectSQLite:
		db, err = sql.Open(sqlite.DriverName, t.Path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported dialect %q", t.Dialect)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", t.Redacted, err)
	}
	return db, nil
}

// population describes the seeded users the workloads pick from: ids
// MinID..MinID+Users-1, and LastNames distinct last names
// ("Lastname0".."Lastname<LastNames-1>"), each shared by usersPerLastName
// users whatever the table size, so that a filtered page does the same work
// at 10,000 and at 1,000,000 rows and only the table around it grows.
type population struct {
	MinID     int64 `json:"min_id"`
	Users     int   `json:"users"`
	LastNames int   `json:"last_names"`
}

const (
	usersPerLastName = 20
	firstNames       = 200
	// seedPassword hashed with the production parameters (argon2id
	// OWASP, m=9216 t=4 p=1), so that checking it upgrades nothing.
	seedPasswordHash = "$argon2id$v=19$m=9216,t=4,p=1$2XBY309zm7d4Lt3DD6dx+w$Y8Hq0dTETX1Ews7TYo3/YLqyvKvZCTEtukhvBw6/QE8"
)

func newPopulation(users int) population {
	return population{MinID: 1, Users: users, LastNames: max(1, users/usersPerLastName)}
}

func (p population) randomID(r interface{ Int64N(int64) int64 }) int64 {
	return p.MinID + r.Int64N(int64(p.Users))
}

func lastName(k int) string { return "Lastname" + strconv.Itoa(k) }

// seededEmail is the email of seeded user i (0 <= i < pop.Users).
func seededEmail(i int, pop population) string {
	return emailTag(i%pop.LastNames) + "." + strconv.Itoa(i) + "@example" + strconv.Itoa(i%97) + ".com"
}

// seedResult says how the users table was filled.
type seedResult struct {
	Reused   bool          `json:"reused"`
	Duration time.Duration `json:"duration_ns"`
	RowsPerS float64       `json:"rows_per_s"`
}

// seed fills the freshly migrated users table with n users by multi-row
// INSERTs of batch rows from workers connections (the approach of the
// store's 1M-row benchmark, with names spread so each last name has
// usersPerLastName users), then sets the exact counter and refreshes the
// optimizer statistics. A table that already holds n seeded users (a kept
// database) is reused as it is.
func seed(ctx context.Context, db *sql.DB, dialect string, n, batch, workers int) (population, seedResult, error) {
	pop := newPopulation(n)
	var have int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM users").Scan(&have); err != nil {
		return pop, seedResult{}, fmt.Errorf("count users: %w", err)
	}
	if have > 0 {
		var lo, inRange int64
		err := db.QueryRowContext(ctx, "SELECT MIN(id) FROM users").Scan(&lo)
		if err == nil {
			err = db.QueryRowContext(ctx, rebind(dialect, "SELECT COUNT(*) FROM users WHERE id >= ? AND id < ? AND email LIKE '%@example%'"), lo, lo+int64(n)).Scan(&inRange)
		}
		if err != nil {
			return pop, seedResult{}, fmt.Errorf("inspect existing users: %w", err)
		}
		if inRange != int64(n) {
			return pop, seedResult{}, fmt.Errorf("the database holds %d users, not the %d seeded ones this run needs: use an empty database (or drop it)", have, n)
		}
		pop.MinID = lo
		return pop, seedResult{Reused: true}, nil
	}
	start := time.Now()
	if dialect == gormstore.DialectSQLite {
		workers = 1 // one writer at a time anyway
	}
	next := make(chan int)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for lo := range next {
				if err := insertBatch(ctx, db, dialect, lo, min(lo+batch, n), pop); err != nil {
					errs <- err
					for range next {
					}
					return
				}
			}
			errs <- nil
		}()
	}
	for lo := 0; lo < n; lo += batch {
		if ctx.Err() != nil {
			break
		}
		next <- lo
	}
	close(next)
	var err error
	for range workers {
		err = errors.Join(err, <-errs)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return pop, seedResult{}, err
	}
	// Every slot but one at zero: the sum is the exact count the service reads.
	if _, err := db.ExecContext(ctx, rebind(dialect, "UPDATE user_counts SET n = CASE WHEN slot = 0 THEN ? ELSE 0 END"), n); err != nil {
		return pop, seedResult{}, fmt.Errorf("set user counter: %w", err)
	}
	analyze := "ANALYZE"
	switch dialect {
	case gormstore.DialectMySQL:
		analyze = "ANALYZE TABLE users"
	case gormstore.DialectPostgres:
		// VACUUM also sets the visibility map, without which PostgreSQL's
		// index-only scans (counts, the trigram bitmap) visit the heap.
		analyze = "VACUUM (ANALYZE) users"
	}
	if _, err := db.ExecContext(ctx, analyze); err != nil {
		return pop, seedResult{}, fmt.Errorf("analyze: %w", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT MIN(id) FROM users").Scan(&pop.MinID); err != nil {
		return pop, seedResult{}, err
	}
	d := time.Since(start)
	return pop, seedResult{Duration: d, RowsPerS: float64(n) / d.Seconds()}, nil
}

const userInsertColumns = "(email, email_ci, first_name, first_name_ci, last_name, last_name_ci, address, password_hash, version, created_at, updated_at)"

var seedEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// insertBatch inserts users lo..hi-1 in one statement. User i is
// First<i%200> Lastname<k> (k = i%LastNames), email <tag(k)>.<i>@example<i%97>.com,
// tag(k) six letters shared by the users of last name k (see emailTag).
func insertBatch(ctx context.Context, db *sql.DB, dialect string, lo, hi int, pop population) error {
	var sb strings.Builder
	sb.Grow(32 + (hi-lo)*26)
	sb.WriteString("INSERT INTO users " + userInsertColumns + " VALUES ")
	args := make([]any, 0, (hi-lo)*11)
	emails := make([]string, 0, hi-lo)
	for i := lo; i < hi; i++ {
		if i > lo {
			sb.WriteByte(',')
		}
		sb.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
		first := "First" + strconv.Itoa(i%firstNames)
		last := lastName(i % pop.LastNames)
		email := seededEmail(i, pop)
		emails = append(emails, email)
		at := seedEpoch.Add(time.Duration(i) * time.Second)
		args = append(args, email, email, first, strings.ToLower(first), last, strings.ToLower(last),
			strconv.Itoa(i)+" Main Street", seedPasswordHash, 1, at, at)
	}
	if dialect != gormstore.DialectMySQL {
		if _, err := db.ExecContext(ctx, rebind(dialect, sb.String()), args...); err != nil {
			return fmt.Errorf("seed users %d-%d: %w", lo, hi-1, err)
		}
		return nil
	}
	// MySQL: the users and their trigram rows in one transaction, as the
	// store writes them. A multi-row INSERT takes consecutive ids from
	// the first one it reports (innodb_autoinc_lock_mode 0 or 1; seeding
	// checks the ids it got).
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, sb.String(), args...)
	if err != nil {
		return fmt.Errorf("seed users %d-%d: %w", lo, hi-1, err)
	}
	first, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if err := seedTrigrams(ctx, tx, first, emails); err != nil {
		return err
	}
	return tx.Commit()
}
