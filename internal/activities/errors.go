package activities

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/channels"
)

// temporalError gives a provider's classified error the retry behaviour its
// class calls for once it leaves an activity: a permanent one (a 404, bad
// credentials, an unknown user) is not retried, whatever the workflow's
// retry policy says; a rate limit is retried after the provider's wait.
// Other errors (the store, the network below a provider) pass unchanged
// and Temporal retries them.
func temporalError(err error) error {
	var ce *channels.Error
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return err // already decided
	}
	switch ce.Class {
	case channels.Permanent:
		return temporal.NewNonRetryableApplicationError(err.Error(), string(ce.Class), err)
	case channels.RetryLater:
		return temporal.NewApplicationErrorWithOptions(err.Error(), string(ce.Class), temporal.ApplicationErrorOptions{NextRetryDelay: ce.RetryAfter, Cause: err})
	default:
		return temporal.NewApplicationErrorWithOptions(err.Error(), string(ce.Class), temporal.ApplicationErrorOptions{Cause: err})
	}
}
