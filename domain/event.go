package domain

import (
	"encoding/json"
	"strconv"
	"time"
)

// Action names a kind of mutation in the event contract.
type Action string

const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
)

// EventType is the CloudEvents type of an action, e.g. "users.user.created".
func (a Action) EventType() string {
	switch a {
	case ActionCreate:
		return "users.user.created"
	case ActionUpdate:
		return "users.user.updated"
	case ActionDelete:
		return "users.user.deleted"
	}
	return "users.user." + string(a)
}

// Event is one committed mutation of a user, as other services receive it.
// It carries no password and no hash.
type Event struct {
	ID         string
	Action     Action
	OccurredAt time.Time
	User       User
	// Changed lists, sorted, the fields an update changed ("password" has no value).
	Changed []string
	// Actor is the authenticated caller's subject (nil: nobody
	// authenticated, e.g. AUTH_MODE=none).
	Actor *string
}

// NewEvent describes a mutation of u at the given time.
func NewEvent(id string, action Action, u User, changed []string, at time.Time) Event {
	return Event{ID: id, Action: action, OccurredAt: at.UTC(), User: u, Changed: changed}
}

// UserData is the public representation of a user inside an event.
type UserData struct {
	ID        int64  `json:"id"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Email     string `json:"email"`
	Address   string `json:"address"`
	// Country is null for users created before it was recorded.
	Country   *string `json:"country"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
}

// PublicData returns the fields of u that may leave the service.
func (u User) PublicData() UserData {
	return UserData{
		ID:        u.ID,
		FirstName: u.FirstName,
		LastName:  u.LastName,
		Email:     u.Email,
		Address:   u.Address,
		Country:   countryOrNil(u.Country),
		CreatedAt: FormatTime(u.CreatedAt),
		UpdatedAt: FormatTime(u.UpdatedAt),
	}
}

func countryOrNil(code string) *string {
	if code == "" {
		return nil
	}
	return &code
}

// EventData is an event's "data": the user's public data, except for a
// delete, which carries the id alone, so that a deletion publishes no
// personal data (consumers drop what they hold under that id). Decoding
// fills the promoted UserData fields that are present.
type EventData struct {
	UserData
	// IDOnly writes only "id" (a delete).
	IDOnly bool `json:"-"`
}

// MarshalJSON writes the whole public data, or {"id": N} for IDOnly.
func (d EventData) MarshalJSON() ([]byte, error) {
	if d.IDOnly {
		return json.Marshal(struct {
			ID int64 `json:"id"`
		}{d.ID})
	}
	return json.Marshal(d.UserData)
}

// EventBody is the JSON value of an event message (the event contract).
type EventBody struct {
	ID         string    `json:"id"`
	Action     Action    `json:"action"`
	OccurredAt string    `json:"occurred_at"`
	Actor      *string   `json:"actor"` // always present: null when no caller authenticated
	Data       EventData `json:"data"`
	Changed    []string  `json:"changed,omitempty"`
}

// Message is an event serialised for a bus: what the outbox stores and a
// publisher sends.
type Message struct {
	// Seq is the message's position in the outbox, assigned by the store;
	// publishing in Seq order keeps each user's events in order.
	Seq        int64
	EventID    string
	Type       string // CloudEvents type
	Key        string // the user id in decimal: one user's events share a partition
	OccurredAt time.Time
	Payload    []byte // JSON EventBody
	// TraceParent and TraceState are the W3C trace context of the request
	// that wrote the message (empty when it was not traced); they travel as
	// message headers, never in the body.
	TraceParent string
	TraceState  string
}

// Message serialises the event.
func (e Event) Message() (Message, error) {
	body := EventBody{
		ID:         e.ID,
		Action:     e.Action,
		OccurredAt: FormatTime(e.OccurredAt),
		Actor:      e.Actor,
	}
	if e.Action == ActionDelete {
		body.Data = EventData{UserData: UserData{ID: e.User.ID}, IDOnly: true}
	} else {
		body.Data = EventData{UserData: e.User.PublicData()}
	}
	if e.Action == ActionUpdate {
		body.Changed = e.Changed
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return Message{}, err
	}
	return Message{
		EventID:    e.ID,
		Type:       e.Action.EventType(),
		Key:        strconv.FormatInt(e.User.ID, 10),
		OccurredAt: e.OccurredAt,
		Payload:    payload,
	}, nil
}
