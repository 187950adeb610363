package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/huabu/huabu/examples"
	"github.com/huabu/huabu/internal/channels/fakes"
)

// fakeCmd runs a provider fake standalone, for demos: `huabu fake wecom`.
// Hidden: it is a tool for trying Huabu without a WeCom corp, not a feature.
func (c *cli) fakeCmd() *cobra.Command {
	var listen, corpID, secret, agentID, staffFile, profilesFile, confirm, ack, callback, token, aesKey string
	var confirmAfter time.Duration
	cmd := &cobra.Command{
		Use:    "fake wecom",
		Short:  "Run the WeCom fake standalone (demo): address book, customers, mass-send tasks, staff who confirm",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "wecom" {
				return c.runProviderFake(cmd, args[0]) // fake_providers.go
			}
			f, err := fakes.NewWeComAt(listen, corpID, secret, agentID)
			if err != nil {
				return userErrorf("--listen %s: %v", listen, err)
			}
			defer f.Close()
			f.Log = func(line string) { fmt.Fprintf(c.stdout, "%s fake: %s\n", time.Now().Format("15:04:05"), line) }
			staff, err := readJSONL(staffFile, "staff.jsonl")
			if err != nil {
				return userError{err}
			}
			grids := map[string]int{}
			var gridNames []string
			for _, s := range staff {
				if g := str(s["grid"]); g != "" && grids[g] == 0 {
					grids[g] = 1
					gridNames = append(gridNames, g)
				}
			}
			sort.Strings(gridNames)
			f.AddDepartment(fakes.Department{ID: 1, Name: "总部"})
			for i, g := range gridNames {
				grids[g] = i + 2
				var heads []string
				for _, s := range staff {
					if str(s["grid"]) == g && str(s["leader"]) == "" {
						heads = append(heads, str(s["userid"]))
					}
				}
				f.AddDepartment(fakes.Department{ID: i + 2, Name: g, ParentID: 1, Leaders: heads})
			}
			for _, s := range staff {
				dept := grids[str(s["grid"])]
				if dept == 0 {
					dept = 1
				}
				m := fakes.Member{UserID: str(s["userid"]), Name: str(s["name"]), Departments: []int{dept}}
				if l := str(s["leader"]); l != "" {
					m.DirectLeaders = []string{l}
				}
				f.AddMember(m)
			}
			profiles, err := readJSONL(profilesFile, "profiles.jsonl")
			if err != nil {
				return userError{err}
			}
			contacts := 0
			for _, p := range profiles {
				traits, _ := p["traits"].(map[string]any)
				if owner, ext := str(traits["owner"]), str(traits["wecom_external_userid"]); owner != "" && ext != "" {
					f.AddContact(owner, ext, str(traits["name"]))
					contacts++
				}
			}
			for _, s := range splitList(confirm) {
				f.AutoConfirm(s, confirmAfter)
			}
			if acks := splitList(ack); len(acks) > 0 {
				if callback == "" {
					return userErrorf("--ack needs --callback (the /wecom/callback URL of Huabu) with --token and --aes-key")
				}
				sender := &fakes.CallbackSender{URL: callback, Token: token, AESKey: aesKey, CorpID: corpID, AgentID: agentID}
				who := map[string]bool{}
				for _, a := range acks {
					who[strings.ToLower(a)] = true
				}
				f.OnTemplateCard(func(userID, taskID string) {
					if !who[userID] {
						return
					}
					go func() {
						time.Sleep(2 * time.Second) // a person reads the card first
						code, body, err := sender.Send(context.Background(), fakes.CardClickedEvent(corpID, agentID, userID, taskID, "ack", time.Now()))
						f.Log(fmt.Sprintf("%s acknowledged the brief (card %s) by callback: %d %s %v", userID, taskID, code, body, err))
					}()
				})
			}
			fmt.Fprintf(c.stdout, "WeCom fake listening on %s\n", f.URL())
			fmt.Fprintf(c.stdout, "  %d staff in %d grids, %d customer contacts; auto-confirming: %s\n", len(staff), len(gridNames), contacts, orNone(confirm))
			fmt.Fprintf(c.stdout, "  channels:\n    wecom: {corp_id: %s, agent_id: %s, secret: %s, base_url: \"%s\", staff_poll_interval: 1m}\n", corpID, agentID, secret, f.URL())
			fmt.Fprintf(c.stdout, "  (examples/huabu-wecom-fake.yaml has these, with the callback on)\n")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			tasks := f.Tasks()
			fmt.Fprintf(c.stdout, "fake: %d mass-send tasks, %d app messages\n", len(tasks), len(f.AppMessages()))
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9001", "address to listen on")
	cmd.Flags().StringVar(&corpID, "corp-id", "ww-demo", "the corp id the fake accepts")
	cmd.Flags().StringVar(&secret, "secret", "demo-secret", "the secret the fake accepts")
	cmd.Flags().StringVar(&agentID, "agent-id", "1000002", "the app's agent id")
	cmd.Flags().StringVar(&staffFile, "staff", "", "staff JSONL for the address book (default: the example staff)")
	cmd.Flags().StringVar(&profilesFile, "profiles", "", "profiles JSONL whose owner and wecom_external_userid become contacts (default: the example profiles)")
	cmd.Flags().StringVar(&confirm, "confirm", "", "comma-separated staff who send their mass-send tasks")
	cmd.Flags().DurationVar(&confirmAfter, "confirm-after", 0, "how long after a task is created they send it")
	cmd.Flags().StringVar(&ack, "ack", "", "comma-separated staff who acknowledge staff briefs (template cards), by callback")
	cmd.Flags().StringVar(&callback, "callback", "", "Huabu's /wecom/callback URL, for --ack")
	cmd.Flags().StringVar(&token, "token", "", "the callback token, for --ack")
	cmd.Flags().StringVar(&aesKey, "aes-key", "", "the callback EncodingAESKey, for --ack")
	c.addProviderFakeFlags(cmd)
	return cmd
}

func readJSONL(path, example string) ([]map[string]any, error) {
	var r io.Reader
	if path == "" {
		f, err := examples.FS.Open(example)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var out []map[string]any
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func str(v any) string { s, _ := v.(string); return s }

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "nobody"
	}
	return s
}
