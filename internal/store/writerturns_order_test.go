package store

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// TestWriterTurnsGoInArrivalOrder: turns go to waiters in the order they
// asked, and a waiter whose context ends leaves without taking one (ADR 050).
func TestWriterTurnsGoInArrivalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &SQLite{writerTurns: make(chan struct{}, 1)}
		ctx := context.Background()
		endFirst, err := s.writerTurn(ctx)
		require.NoError(t, err)

		order := make(chan int, 5)
		ends := make(chan func(), 5)
		gaveUp := make(chan error, 1)
		quit, cancel := context.WithCancel(ctx)
		for i := range 5 {
			if i == 2 { // the third waiter gives up while it waits
				go func() {
					_, err := s.writerTurn(quit)
					gaveUp <- err
				}()
				synctest.Wait()
			}
			go func() {
				end, err := s.writerTurn(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				order <- i
				ends <- end
			}()
			synctest.Wait() // waiter i is blocked before the next one asks
		}
		cancel()
		require.ErrorIs(t, <-gaveUp, context.Canceled)

		endFirst()
		var got []int
		for range 5 {
			got = append(got, <-order)
			(<-ends)()
		}
		require.Equal(t, []int{0, 1, 2, 3, 4}, got)
	})
}
