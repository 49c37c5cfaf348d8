package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/marketplace/usersvc/domain"
)

// Media types a write may carry. Form encoding is what `curl -d` sends.
const (
	mediaJSON = "application/json"
	mediaForm = "application/x-www-form-urlencoded"
)

// decodeInput reads a write's body into a domain.Input. It checks only the
// shape (media type, syntax, that the body is an object); a field that is
// not a string is recorded in Input.Rejected, and the core applies the
// field rules and reports both together. Fields the API does not know, including the read-only
// ones (id, url, timestamps) a client may send back from a GET, are ignored.
func decodeInput(c *gin.Context) (domain.Input, error) {
	raw := c.GetHeader("Content-Type")
	mediaType, _, err := mime.ParseMediaType(raw)
	if err != nil {
		return domain.Input{}, unsupportedMediaType(raw)
	}
	if mediaType != mediaJSON && mediaType != mediaForm {
		return domain.Input{}, unsupportedMediaType(raw)
	}
	body, err := readBody(c)
	if err != nil {
		return domain.Input{}, err
	}
	if mediaType == mediaForm {
		return decodeForm(body)
	}
	return decodeJSON(body)
}

// readBody reads the whole request body by the request's deadline. The
// connection's read deadline is set for the read only: left in place, it
// would also end net/http's background read (which watches for the client
// going away) and cancel the request as if the client had left.
// A body that does not arrive in time is a 408, one cut short a 400, one
// over the cap a 413: the client's doing, never a 500.
func readBody(c *gin.Context) ([]byte, error) {
	rc := http.NewResponseController(c.Writer)
	if d, ok := c.Request.Context().Deadline(); ok {
		if err := rc.SetReadDeadline(d); err == nil {
			defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
		}
	}
	body, err := io.ReadAll(c.Request.Body)
	switch {
	case err == nil:
		return body, nil
	case isBodyTooLarge(err):
		return nil, errBodyTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, errBodyTimeout
	default:
		return nil, errBodyIncomplete
	}
}

// decodeJSON accepts exactly one JSON object. An empty body counts as {} so
// that it yields the per-field "required" messages.
func decodeJSON(body []byte) (domain.Input, error) {
	if len(body) == 0 {
		return domain.Input{}, nil
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(body) {
		return domain.Input{}, parseError("JSON", fmt.Errorf("invalid UTF-8 in request body"))
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return domain.Input{}, parseError("JSON", err)
	}
	object, ok := doc.(map[string]any)
	if !ok {
		return domain.Input{}, domain.FieldError("non_field_errors",
			fmt.Sprintf("Invalid data. Expected a dictionary, but got %s.", jsonKind(doc)))
	}
	var in domain.Input
	reject := func(field, msg string) {
		if in.Rejected == nil {
			in.Rejected = map[string]string{}
		}
		in.Rejected[field] = msg
	}
	for _, f := range inputFields(&in) {
		v, present := object[f.name]
		if !present {
			continue
		}
		switch v := v.(type) {
		case string:
			*f.dst = &v
		case nil:
			reject(f.name, msgNotNull)
		default:
			reject(f.name, domain.MsgNotString)
		}
	}
	// The core reports these with the other fields' problems.
	return in, nil
}

// jsonKind names a decoded JSON value the way the prototype's messages do.
func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "str"
	case bool:
		return "bool"
	case float64:
		return "number"
	case nil:
		return "null"
	}
	return "value"
}

// decodeForm reads application/x-www-form-urlencoded; of a repeated field
// the last value wins. Text that is not UTF-8 is passed on for the core to
// refuse with its field message.
func decodeForm(body []byte) (domain.Input, error) {
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return domain.Input{}, parseError("Form", err)
	}
	var in domain.Input
	for _, f := range inputFields(&in) {
		vs, present := values[f.name]
		if !present || len(vs) == 0 {
			continue
		}
		v := vs[len(vs)-1]
		*f.dst = &v
	}
	return in, nil
}

type inputField struct {
	name string
	dst  **string
}

// inputFields lists the writable fields with where each one goes.
func inputFields(in *domain.Input) []inputField {
	return []inputField{
		{domain.FieldFirstName, &in.FirstName},
		{domain.FieldLastName, &in.LastName},
		{domain.FieldEmail, &in.Email},
		{domain.FieldPassword, &in.Password},
		{domain.FieldAddress, &in.Address},
	}
}
