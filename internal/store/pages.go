package store

import (
	"encoding/binary"
	"errors"
	"slices"
)

// PageSize is how many members a cohort page holds at most.
const PageSize = 1000

// PackMembers encodes sorted, distinct uids as deltas in uvarints: about two
// bytes a member for dense ids, so a page of 1,000 is a 2 KB blob.
func PackMembers(uids []int64) []byte {
	if !slices.IsSorted(uids) {
		uids = slices.Clone(uids)
		slices.Sort(uids)
	}
	buf := make([]byte, 0, len(uids)*2+8)
	var prev int64
	for _, u := range uids {
		buf = binary.AppendUvarint(buf, uint64(u-prev))
		prev = u
	}
	return buf
}

// UnpackMembers decodes PackMembers' output.
func UnpackMembers(b []byte) ([]int64, error) {
	out := make([]int64, 0, len(b)/2)
	var prev int64
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errors.New("store: corrupt member page")
		}
		prev += int64(d)
		out = append(out, prev)
		b = b[n:]
	}
	return out, nil
}
