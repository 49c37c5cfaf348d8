package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDecodeWalkPage holds the walker's decoder (jsontext or Unmarshal,
// by toolchain) to what a page says: the next link and the result ids in
// order, and an error for anything that is not such a page.
func TestDecodeWalkPage(t *testing.T) {
	next := "http://127.0.0.1:8000/api/v1/users?cursor=eyJvIjoiaWQifQ&page_size=100"
	for _, tc := range []struct {
		name    string
		body    string
		next    *string
		ids     []int64
		invalid bool
	}{
		{name: "a middle page", next: &next, ids: []int64{7, 9},
			body: `{"next": "` + next + `", "previous": "http://127.0.0.1:8000/api/v1/users?cursor=x",
				"results": [{"url": "http://127.0.0.1:8000/api/v1/users/7", "id": 7, "first_name": "Zoë", "country": null,
				"created_at": "2026-12-04T19:25:01.123456Z"}, {"id": 9, "address": "1 Rue \"id\": 3, Genève"}]}`},
		{name: "the last page", body: `{"next":null,"previous":null,"results":[{"id":1}]}`, ids: []int64{1}},
		{name: "no results", body: `{"next": null, "previous": null, "results": []}`},
		{name: "members in another order", body: `{"results":[{"email":"a@b.ch","id":12}],"next":"` + next + `"}`, next: &next, ids: []int64{12}},
		{name: "ids of nested objects are not results", body: `{"next":null,"results":[{"id":4,"extra":{"id":5,"list":[{"id":6}]}}]}`, ids: []int64{4}},
		{name: "surrounding whitespace", body: " \n{\"next\":null,\"results\":[{\"id\":2}]}\n", ids: []int64{2}},
		{name: "truncated", body: `{"next":null,"results":[{"id":1}`, invalid: true},
		{name: "id as a string", body: `{"next":null,"results":[{"id":"1"}]}`, invalid: true},
		{name: "id with a fraction", body: `{"next":null,"results":[{"id":1.5}]}`, invalid: true},
		{name: "next as a number", body: `{"next":5,"results":[]}`, invalid: true},
		{name: "results not an array", body: `{"next":null,"results":{"id":1}}`, invalid: true},
		{name: "an array, not a page", body: `[{"id":1}]`, invalid: true},
		{name: "a second value after the page", body: `{"next":null,"results":[]} {}`, invalid: true},
		{name: "empty", body: ``, invalid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decodeWalkPage([]byte(tc.body), make([]int64, 3))
			if tc.invalid {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (p.Next == nil) != (tc.next == nil) || p.Next != nil && *p.Next != *tc.next {
				t.Errorf("next = %v, want %v", p.Next, tc.next)
			}
			if !slices.Equal(p.IDs, tc.ids) {
				t.Errorf("ids = %v, want %v", p.IDs, tc.ids)
			}
		})
	}
}

// BenchmarkDecodeWalkPage is the walker's share of a walk page: a page of
// 100 users as the service writes them.
func BenchmarkDecodeWalkPage(b *testing.B) {
	body := []byte(walkPageBody(100))
	ids := make([]int64, 0, 100)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p, err := decodeWalkPage(body, ids)
		if err != nil || len(p.IDs) != 100 || p.Next == nil {
			b.Fatalf("decoded %d ids, next %v: %v", len(p.IDs), p.Next, err)
		}
		ids = p.IDs
	}
}

// walkPageBody is a cursor page of n users in the service's format.
func walkPageBody(n int) string {
	var sb strings.Builder
	base := "http://127.0.0.1:43210/api/v1/users"
	sb.WriteString(`{"next":"` + base + `?cursor=eyJvIjoiaWQiLCJrIjpbMTAwXX0.abcdefghijklmnop&page_size=100","previous":null,"results":[`)
	for i := 1; i <= n; i++ {
		if i > 1 {
			sb.WriteByte(',')
		}
		id := strconv.Itoa(i)
		sb.WriteString(`{"url":"` + base + `/` + id + `","id":` + id + `,"first_name":"First` + id + `","last_name":"Lastname` + id +
			`","email":"user` + id + `@example` + id + `.com","address":"` + id + ` Main Street, 8000 Zürich","country":"CH",` +
			`"created_at":"2026-12-04T19:25:01.123456Z","updated_at":"2026-12-04T19:25:01.123456Z"}`)
	}
	sb.WriteString(`]}`)
	return sb.String()
}
