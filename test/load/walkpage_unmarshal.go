//go:build !go1.27

package main

import "encoding/json"

// decodeWalkPage reads a page's next link and result ids with
// json.Unmarshal (toolchains without encoding/json/jsontext).
func decodeWalkPage(body []byte, ids []int64) (walkPage, error) {
	var page struct {
		Next    *string `json:"next"`
		Results []struct {
			ID int64 `json:"id"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return walkPage{}, err
	}
	p := walkPage{Next: page.Next, IDs: ids[:0]}
	for _, r := range page.Results {
		p.IDs = append(p.IDs, r.ID)
	}
	return p, nil
}
