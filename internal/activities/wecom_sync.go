package activities

import (
	"context"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/directory"
)

// SyncWeComDirectory copies the WeCom address book and customer lists into
// the staff directory and contact book (directory.SyncWeCom). The worker runs
// it on a Temporal Schedule; callbacks keep the data current in between.
// What WeCom refuses for good (a wrong base_url's 404, a secret without the
// address-book permission) fails the sync at once instead of being retried.
func (a *StaffActivities) SyncWeComDirectory(ctx context.Context) (directory.SyncSummary, error) {
	if a.WeCom == nil {
		return directory.SyncSummary{}, nil // WeCom is not configured: nothing to sync
	}
	if a.Directory == nil {
		return directory.SyncSummary{}, temporal.NewNonRetryableApplicationError("the activities were built without a staff directory (StaffActivities.Directory)", "StaffStoreUnavailable", nil)
	}
	sum, err := directory.SyncWeCom(ctx, a.WeCom, a.Directory)
	return sum, temporalError(err)
}
