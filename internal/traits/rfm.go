package traits

import (
	"context"
	"slices"
	"time"

	"github.com/huabu/huabu/internal/store"
)

// bounds are RFM quintile boundaries: a value scores 1 plus the number of
// boundaries it exceeds, so each fifth of the population gets one score
// (ties keep equal values together, so a fifth can be empty or larger).
// R is scored on the time of the last purchase: later is better.
type bounds struct {
	R  [4]float64 `json:"r"`
	F  [4]float64 `json:"f"`
	M  [4]float64 `json:"m"`
	N  int        `json:"n"`  // purchasers they were computed from
	At int64      `json:"at"` // when, unix ms
}

const boundsKey = "rfm.bounds"

func loadBounds(tx *store.TraitTx) (*bounds, error) {
	var b bounds
	ok, err := tx.Setting(boundsKey, &b)
	if err != nil || !ok {
		return nil, err
	}
	return &b, nil
}

func quintiles(v []float64) [4]float64 {
	slices.Sort(v)
	var q [4]float64
	n := len(v)
	for k := 1; k <= 4; k++ {
		// The value at rank ceil(k·n/5): with 5 distinct values the scores are 1..5.
		i := (k*n+4)/5 - 1
		q[k-1] = v[max(i, 0)]
	}
	return q
}

func scoreOf(v float64, q [4]float64) float64 {
	s := 1
	for _, b := range q {
		if v > b {
			s++
		}
	}
	return float64(s)
}

func (b *bounds) score(raw store.RFMValue) map[string]any {
	return map[string]any{
		"r": scoreOf(float64(raw.LastTS), b.R),
		"f": scoreOf(float64(raw.Frequency), b.F),
		"m": scoreOf(raw.Monetary, b.M),
	}
}

// RefreshRFM recomputes the quintile boundaries over every purchaser within
// the window and rescores them all, page by page. Windows are brought up to
// date first, so the population is the current one.
func (e *Engine) RefreshRFM(ctx context.Context) error {
	if e.rfm == nil {
		return nil
	}
	e.needRFM.Store(false)
	if err := e.refreshRFM(ctx); err != nil {
		e.needRFM.Store(true) // tried again on the next turn of the loop
		return err
	}
	return nil
}

func (e *Engine) refreshRFM(ctx context.Context) error {
	if _, err := e.RefreshDue(ctx); err != nil {
		return err
	}
	start := time.Now()
	var r, f, m []float64
	err := e.st.ScanRFM(ctx, func(v store.RFMValue) {
		r = append(r, float64(v.LastTS))
		f = append(f, float64(v.Frequency))
		m = append(m, v.Monetary)
	})
	if err != nil {
		return err
	}
	if len(r) == 0 {
		return nil // no purchasers: no quintiles (the first ones trigger them)
	}
	b := bounds{N: len(r), R: quintiles(r), F: quintiles(f), M: quintiles(m)}
	err = e.st.Traits(ctx, func(tx *store.TraitTx) error {
		b.At = tx.Now()
		return tx.SetSetting(boundsKey, b)
	})
	if err != nil {
		return err
	}
	e.noBounds.Store(false) // whoever was left unscored is scored below
	rescored, after := 0, int64(0)
	for {
		n := 0
		err := e.st.Traits(ctx, func(tx *store.TraitTx) error {
			uids, err := tx.RFMAfter(after, e.PageSize*2)
			if err != nil || len(uids) == 0 {
				return err
			}
			n = len(uids)
			after = uids[len(uids)-1]
			raw, err := tx.RFMValuesOf(uids)
			if err != nil {
				return err
			}
			docs, err := tx.Docs(uids)
			if err != nil {
				return err
			}
			var writes []store.DocWrite
			for _, row := range docs {
				v, ok := raw[row.UID]
				if !ok {
					continue
				}
				doc, changed, err := e.apply(row.Doc, nil, b.score(v), true)
				if err == nil && changed {
					writes = append(writes, store.DocWrite{UID: row.UID, Doc: doc})
					rescored++
				}
			}
			return tx.WriteDocs(writes)
		})
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	e.log.Info("rfm quintiles recomputed", "purchasers", b.N, "rescored", rescored, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
