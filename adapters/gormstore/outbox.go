package gormstore

import (
	"context"
	"database/sql"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/marketplace/usersvc/domain"
)

// outboxRow is a row of the outbox table.
type outboxRow struct {
	Seq         int64        `gorm:"column:seq;primaryKey;autoIncrement"`
	EventID     string       `gorm:"column:event_id"`
	EventType   string       `gorm:"column:event_type"`
	MsgKey      string       `gorm:"column:msg_key"`
	Payload     []byte       `gorm:"column:payload"`
	OccurredAt  time.Time    `gorm:"column:occurred_at"`
	CreatedAt   time.Time    `gorm:"column:created_at;autoCreateTime:false"`
	PublishedAt sql.NullTime `gorm:"column:published_at"`
	// The writing request's W3C trace context; NULL when it was not traced.
	TraceParent sql.NullString `gorm:"column:traceparent"`
	TraceState  sql.NullString `gorm:"column:tracestate"`
}

func (outboxRow) TableName() string { return "outbox" }

// Default batch sizes that keep single statements short on a large outbox.
const (
	defaultMarkBatch  = 500
	defaultPurgeBatch = 1000
)

// AppendMessage inserts m into the outbox inside the transaction.
func (t *txStore) AppendMessage(ctx context.Context, m domain.Message) (err error) {
	ctx, span := t.store.span(ctx, "outbox write", semconv.DBOperationName("insert"), semconv.DBCollectionName("outbox"),
		semconv.MessagingMessageID(m.EventID), attribute.String("cloudevents.event_type", m.Type))
	defer func() { endSpan(span, err) }()
	r := outboxRow{
		EventID:     m.EventID,
		EventType:   m.Type,
		MsgKey:      m.Key,
		Payload:     m.Payload,
		OccurredAt:  dbTime(m.OccurredAt),
		CreatedAt:   dbTime(t.now()),
		TraceParent: nullString(m.TraceParent),
		TraceState:  nullString(m.TraceState),
	}
	if r.Payload == nil {
		r.Payload = []byte{}
	}
	if err := t.tx.WithContext(ctx).Create(&r).Error; err != nil {
		return dbErr(ctx, "append outbox message "+m.EventID, err)
	}
	return nil
}

// PendingMessages returns up to limit unpublished messages with a seq
// above afterSeq, in seq order: a range of the (published_at, seq) index on
// MySQL and SQLite, of the partial seq index on PostgreSQL.
func (s *Store) PendingMessages(ctx context.Context, afterSeq int64, limit int) ([]domain.Message, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if limit <= 0 {
		return nil, nil
	}
	var rows []outboxRow
	err := s.db.WithContext(ctx).
		Where("published_at IS NULL AND seq > ?", afterSeq).
		Order("seq").
		Limit(limit).
		Find(&rows).Error
	if err != nil {
		return nil, dbErr(ctx, "read pending outbox messages", err)
	}
	msgs := make([]domain.Message, len(rows))
	for i, r := range rows {
		msgs[i] = domain.Message{
			Seq:         r.Seq,
			EventID:     r.EventID,
			Type:        r.EventType,
			Key:         r.MsgKey,
			OccurredAt:  r.OccurredAt.UTC(),
			Payload:     r.Payload,
			TraceParent: r.TraceParent.String,
			TraceState:  r.TraceState.String,
		}
	}
	return msgs, nil
}

// nullString stores "" as NULL: no trace context rather than an empty one.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// MarkPublished records the broker's acknowledgement of these messages.
// Already published ones keep their first publication time.
func (s *Store) MarkPublished(ctx context.Context, seqs []int64, at time.Time) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	db := s.db.WithContext(ctx)
	for len(seqs) > 0 {
		n := min(len(seqs), s.markBatch)
		err := db.Model(&outboxRow{}).
			Where("seq IN ? AND published_at IS NULL", seqs[:n]).
			Update("published_at", dbTime(at)).Error
		if err != nil {
			return dbErr(ctx, "mark outbox messages published", err)
		}
		seqs = seqs[n:]
	}
	return nil
}

// PurgePublished deletes messages published before the given time, in
// bounded batches so that no statement holds many locks for long (a
// portable "DELETE ... LIMIT": SQLite lacks it, MySQL refuses LIMIT in an
// IN subquery).
func (s *Store) PurgePublished(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	db := s.db.WithContext(ctx)
	cutoff := dbTime(before)
	var total int64
	for {
		var seqs []int64
		err := db.Model(&outboxRow{}).
			Where("published_at < ?", cutoff).
			Order("published_at, seq").
			Limit(s.purgeBatch).
			Pluck("seq", &seqs).Error
		if err != nil {
			return total, dbErr(ctx, "find published outbox messages", err)
		}
		if len(seqs) == 0 {
			return total, nil
		}
		res := db.Where("seq IN ? AND published_at < ?", seqs, cutoff).Delete(&outboxRow{})
		if res.Error != nil {
			return total, dbErr(ctx, "purge published outbox messages", res.Error)
		}
		total += res.RowsAffected
		if len(seqs) < s.purgeBatch {
			return total, nil
		}
	}
}

// Backlog counts unpublished messages and returns the oldest one's
// occurred_at (zero when there is none), both from indexes.
func (s *Store) Backlog(ctx context.Context) (int64, time.Time, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	db := s.db.WithContext(ctx)
	var count int64
	if err := db.Model(&outboxRow{}).Where("published_at IS NULL").Count(&count).Error; err != nil {
		return 0, time.Time{}, dbErr(ctx, "count outbox backlog", err)
	}
	if count == 0 {
		return 0, time.Time{}, nil
	}
	// ORDER BY ... LIMIT 1 rather than MIN(): the column keeps its declared
	// type, so SQLite hands back a time rather than text.
	var oldest []time.Time
	err := db.Model(&outboxRow{}).
		Where("published_at IS NULL").
		Order("occurred_at").
		Limit(1).
		Pluck("occurred_at", &oldest).Error
	if err != nil {
		return 0, time.Time{}, dbErr(ctx, "read outbox backlog age", err)
	}
	if len(oldest) == 0 { // published meanwhile
		return count, time.Time{}, nil
	}
	return count, oldest[0].UTC(), nil
}
