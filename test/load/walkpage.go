package main

// walkPage is the part of a cursor page the walk reads: the next link
// (nil on the last page) and the ids of the results, in order. Decoding
// it is the walker's share of the two cores it measures on, so it is read
// as a stream of tokens where the toolchain has encoding/json/jsontext
// (walkpage_jsontext.go), and with json.Unmarshal elsewhere
// (walkpage_unmarshal.go). TestDecodeWalkPage holds both to the same
// answers.
type walkPage struct {
	Next *string
	IDs  []int64
}
