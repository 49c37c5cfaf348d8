package httpapi

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/marketplace/usersvc/domain"
)

// List query parameters.
const (
	paramPage          = "page"
	paramPageSize      = "page_size"
	paramFirstName     = "first_name"
	paramLastName      = "last_name"
	paramEmail         = "email"
	paramSearch        = "search"
	paramSinceID       = "since_id"
	paramMaxID         = "max_id"
	paramCreatedAfter  = "created_after"
	paramCreatedBefore = "created_before"
	paramCountry       = "country"
	paramOrdering      = "ordering"
)

// parseListQuery reads a list request's query string. A page that is not a
// positive integer is domain.ErrInvalidPage; a page size that is not a
// positive integer falls back to the default, and a larger one clamps to
// the maximum; a malformed filter is a field error. Empty values mean "no
// filter" (an empty page means the first), as in the prototype.
func parseListQuery(values url.Values) (domain.ListQuery, error) {
	q := domain.ListQuery{
		FirstName: values.Get(paramFirstName),
		LastName:  values.Get(paramLastName),
		Email:     values.Get(paramEmail),
		Search:    values.Get(paramSearch),
		Ordering:  parseOrdering(values.Get(paramOrdering)),
		Page:      1,
		PageSize:  parsePageSize(values.Get(paramPageSize)),
	}
	if raw := values.Get(paramPage); raw != "" {
		page, err := strconv.Atoi(raw)
		if err != nil || page < 1 {
			return domain.ListQuery{}, domain.ErrInvalidPage
		}
		q.Page = page
	}
	errs := &domain.ValidationError{}
	q.SinceID = parseIDFilter(errs, paramSinceID, values.Get(paramSinceID))
	q.MaxID = parseIDFilter(errs, paramMaxID, values.Get(paramMaxID))
	q.CreatedAfter = parseTimeFilter(errs, paramCreatedAfter, values.Get(paramCreatedAfter))
	q.CreatedBefore = parseTimeFilter(errs, paramCreatedBefore, values.Get(paramCreatedBefore))
	q.Countries = parseCountryFilter(errs, paramCountry, values[paramCountry])
	if err := errs.OrNil(); err != nil {
		return domain.ListQuery{}, err
	}
	return q, nil
}

func parsePageSize(raw string) int {
	n, err := strconv.Atoi(raw)
	switch {
	case err != nil || n < 1:
		return domain.DefaultPageSize
	case n > domain.MaxPageSize:
		return domain.MaxPageSize
	}
	return n
}

func parseIDFilter(errs *domain.ValidationError, name, raw string) *int64 {
	if raw == "" {
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil {
		errs.Add(name, msgInvalidInteger)
		return nil
	}
	return &n
}

// parseTimeFilter reads an RFC 3339 time. An unencoded "+" of a UTC offset
// arrives as a space after query decoding; that one mistake is forgiven.
func parseTimeFilter(errs *domain.ValidationError, name, raw string) *time.Time {
	if raw == "" {
		return nil
	}
	raw = strings.TrimSpace(raw)
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil && strings.Count(raw, " ") == 1 {
		t, err = time.Parse(time.RFC3339Nano, strings.Replace(raw, " ", "+", 1))
	}
	if err != nil {
		errs.Add(name, msgInvalidDateTime)
		return nil
	}
	return &t
}

// parseCountryFilter reads ISO 3166-1 alpha-2 codes, comma-separated (or the
// parameter repeated), in any case; the result is upper case, without
// repeats. Empty values mean no filter; any other item that is not an
// assigned code is a field error naming the first such item.
func parseCountryFilter(errs *domain.ValidationError, name string, raws []string) []string {
	var codes []string
	for _, raw := range raws {
		if raw == "" {
			continue
		}
		for _, item := range strings.Split(raw, ",") {
			code := strings.ToUpper(strings.TrimSpace(item))
			if !domain.ValidCountryCode(code) {
				errs.Add(name, msgInvalidCountry(item))
				return nil
			}
			if !slices.Contains(codes, code) {
				codes = append(codes, code)
			}
		}
	}
	return codes
}

// parseOrdering keeps the sortable names of a comma-separated list, each
// optionally prefixed by "-", in order and without repeating a field.
// Unknown names are ignored; nil means the default order (by id).
func parseOrdering(raw string) []domain.OrderField {
	var out []domain.OrderField
	seen := map[string]bool{}
	for _, term := range strings.Split(raw, ",") {
		term = strings.TrimSpace(term)
		f := domain.OrderField{Field: strings.TrimPrefix(term, "-"), Desc: strings.HasPrefix(term, "-")}
		if !domain.IsSortable(f.Field) || seen[f.Field] {
			continue
		}
		seen[f.Field] = true
		out = append(out, f)
	}
	return out
}
