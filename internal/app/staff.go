package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/huabu/huabu/internal/reports"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/workflows"
)

// The staff SOP loop's wiring: the WeCom callback route, the staff report
// of the API, and the schedule that syncs the WeCom directory.

// StaffReport builds a canvas's staff completion report (the API's
// ?by=staff|grid).
func (app *App) StaffReport(ctx context.Context, canvasID string, runID int64, by string) (*reports.StaffReport, error) {
	return reports.BuildStaff(ctx, app.store, canvasID, runID, by)
}

// withStaffRoutes adds GET|POST /wecom/callback when
// channels.wecom.callback is configured, and POST /sms/replies when
// channels.sms.reply_token is.
func (app *App) withStaffRoutes(h *server.Handler) {
	cb, err := app.wecomCallback()
	switch {
	case err != nil:
		app.log.Warn("the WeCom callback is off", "err", err)
	case cb != nil:
		h.Handle("GET /wecom/callback", cb)
		h.Handle("POST /wecom/callback", cb)
		app.log.Info("WeCom callback at /wecom/callback")
	}
	if sr := app.smsReplies(); sr != nil {
		h.Handle("POST /sms/replies", sr)
		app.log.Info("SMS replies at /sms/replies?token=… (channels.sms.reply_token)", "provider", sr.Provider)
	}
}

// wecomSection is channels.wecom when its provider is WeCom itself.
func (app *App) wecomSection() map[string]any {
	if app.cfg.Provider("wecom") != "wecom" {
		return nil
	}
	return app.cfg.Channels["wecom"]
}

func (app *App) wecomCallback() (*server.WeComCallback, error) {
	sec := app.wecomSection()
	cbc, _ := sec["callback"].(map[string]any)
	if cbc == nil {
		return nil, nil
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	rec := server.IngestRecorder{Store: app.store, Sink: app.EventSink()}
	return server.NewWeComCallback(server.WeComCallbackConfig{Token: str(cbc, "token"), AESKey: str(cbc, "aes_key"), CorpID: str(sec, "corp_id")},
		app.store, rec, app.log.With("component", "wecom-callback"))
}

// directorySyncSchedule is the Schedule of the WeCom directory sync. The
// underscore keeps it apart from canvas schedules (huabu-<canvas id>, ids
// are [a-z0-9-]).
const directorySyncSchedule = "huabu_wecom_directory_sync"

// startDirectorySync keeps a Temporal Schedule that syncs the staff
// directory and contacts from WeCom every directory_sync_interval (default
// 6h; 0 turns it off), when WeCom is configured.
func (app *App) startDirectorySync(ctx context.Context) error {
	sec := app.wecomSection()
	if sec == nil {
		return nil
	}
	every := 6 * time.Hour
	if v, ok := sec["directory_sync_interval"]; ok {
		d, err := time.ParseDuration(fmt.Sprint(v))
		if err != nil {
			return fmt.Errorf("channels.wecom.directory_sync_interval: %w", err)
		}
		every = d
	}
	sc := app.client.ScheduleClient()
	if every <= 0 {
		err := sc.GetHandle(ctx, directorySyncSchedule).Delete(ctx)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return err
		}
		return nil
	}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	action := &client.ScheduleWorkflowAction{ID: "huabu-wecom-directory-sync", Workflow: workflows.SyncDirectoryName, TaskQueue: app.cfg.Temporal.TaskQueue}
	_, err := sc.Create(ctx, client.ScheduleOptions{ID: directorySyncSchedule, Spec: spec, Action: action,
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP, TriggerImmediately: true})
	if err == nil {
		return nil
	}
	var exists *serviceerror.WorkflowExecutionAlreadyStarted
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) && !errors.As(err, &exists) {
		return err
	}
	return sc.GetHandle(ctx, directorySyncSchedule).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec, s.Action = &spec, action
			return &client.ScheduleUpdate{Schedule: &s}, nil
		},
	})
}
