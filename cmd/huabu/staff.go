package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/directory"
)

func (c *cli) syncCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync wecom",
		Short: "Copy the staff directory (departments as grids, leaders) and customers' owners from the WeCom address book and customer lists",
		Long: `Sync the staff directory from WeCom: every member becomes a staff member with their
main department as grid and their direct leader (else their department's leader) as leader;
every member's customers are linked to a profile (found by wecom_external_userid, created if
new) with the member who added them first as owner, where the profile has none. The worker
runs the same sync every channels.wecom.directory_sync_interval; callbacks keep it current.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "wecom" {
				return userErrorf("sync %q: only wecom can be synced", args[0])
			}
			ctx := cmd.Context()
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			if cfg.Provider("wecom") != "wecom" {
				return userErrorf("channels.wecom is not configured with WeCom (provider %q); set corp_id, agent_id and secret", cfg.Provider("wecom"))
			}
			log := slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			api, err := wecom.NewAPI(cfg.Channels["wecom"], channels.Deps{Logger: log})
			if err != nil {
				return userErrorf("channels.wecom: %v", err)
			}
			st, err := c.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			sum, err := directory.SyncWeCom(ctx, api, st)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "synced %d departments, %d staff, %d contacts of %d customers (%d new profiles) in %s\n",
				sum.Departments, sum.Staff, sum.Contacts, sum.Customers, sum.NewProfiles, sum.Elapsed.Round(time.Millisecond))
			return nil
		},
	}
	return cmd
}
