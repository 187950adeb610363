package console

import (
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// The interface speaks Chinese by default (the operators are Chinese) and
// English when the browser prefers it or the switch says so. Templates
// write English keys: {{t $.Lang "Canvases"}}.

var zh = map[string]string{
	"Canvases":                 "画布",
	"Canvas":                   "画布",
	"Runs":                     "运行",
	"Run":                      "运行",
	"Status":                   "状态",
	"Trigger":                  "触发",
	"Version":                  "版本",
	"Last run":                 "最近一次运行",
	"Search":                   "搜索",
	"All":                      "全部",
	"live":                     "运行中",
	"draft awaiting approval":  "草稿待审批",
	"paused":                   "已暂停",
	"stopped":                  "已停止",
	"retired":                  "已下线",
	"schedule":                 "定时",
	"event":                    "事件",
	"manual":                   "手动",
	"Next":                     "接下来",
	"deployed":                 "部署于",
	"by":                       "由",
	"entered":                  "进入",
	"sent":                     "发送",
	"failed":                   "失败",
	"suppressed":               "屏蔽",
	"unknown":                  "未知",
	"waiting":                  "等待中",
	"converted":                "转化",
	"exited":                   "退出",
	"pending":                  "处理中",
	"No canvases match.":       "没有符合条件的画布。",
	"No runs yet.":             "还没有运行。",
	"Flow":                     "流程",
	"Step":                     "步骤",
	"Started":                  "开始",
	"Finished":                 "结束",
	"State":                    "状态",
	"Log in":                   "登录",
	"Log out":                  "退出登录",
	"Token":                    "令牌",
	"That token is not valid.": "令牌无效。",
	"Paste your Huabu token (auth.tokens in huabu.yaml) to sign in.": "粘贴你的 Huabu 令牌（huabu.yaml 中的 auth.tokens）登录。",
	"Recipients": "收件人样本",
	"newest":     "最新",
	"users who reached this step, in user order, a page at a time": "到达此步骤的用户，按用户排序，分页显示",
	"User":                                  "用户",
	"Visit":                                 "第几次",
	"Outcome":                               "结果",
	"Reason":                                "原因",
	"Channel":                               "渠道",
	"At":                                    "时间",
	"Nobody reached this step in this run.": "本次运行没有用户到达此步骤。",
	"First page":                            "第一页",
	"Next page":                             "下一页",
	"Sample of recipients":                  "收件人样本",
	"Pause":                                 "暂停",
	"Resume":                                "恢复",
	"Stop":                                  "停止",
	"Stop this canvas? Running runs end and no new runs start.": "确定停止该画布？正在进行的运行会结束，且不再启动新的运行。",
	"Progress":                               "进度",
	"Waiting cohorts":                        "等待中的人群",
	"wakes":                                  "唤醒",
	"deadline":                               "截止",
	"users":                                  "人",
	"in flight":                              "进行中",
	"Failure reasons":                        "失败原因",
	"Suppression reasons":                    "屏蔽原因",
	"Refreshes every 3 s.":                   "每 3 秒自动刷新。",
	"Not allowed":                            "无权操作",
	"Error":                                  "错误",
	"Back":                                   "返回",
	"Funnel":                                 "漏斗",
	"all runs":                               "全部运行",
	"Counts of":                              "计数范围",
	"Approval":                               "审批",
	"approved by":                            "审批人",
	"local (loopback, no tokens configured)": "本机（未配置令牌，仅限回环地址）",
	"Language":                               "语言",
	"Exited early (exit event)":              "提前退出（退出事件）",
	"Workflow":                               "工作流",
	"Canvas state":                           "画布状态",
	"active":                                 "正常",
	"Nothing waits now.":                     "当前没有等待中的人群。",
}

// tr translates an English key into the page's language.
func tr(lang, key string) string {
	if lang == "zh" {
		if s, ok := zh[key]; ok {
			return s
		}
	}
	return key
}

// lang picks the page's language: ?lang= (remembered in a cookie), the
// cookie, else the browser's first preference; Chinese by default.
func (c *Console) lang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh" {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode, HttpOnly: true})
		return l
	}
	if ck, err := r.Cookie(langCookie); err == nil && (ck.Value == "en" || ck.Value == "zh") {
		return ck.Value
	}
	first, _, _ := strings.Cut(r.Header.Get("Accept-Language"), ",")
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(first)), "en") {
		return "en"
	}
	return "zh"
}

func (c *Console) funcs() template.FuncMap {
	return template.FuncMap{
		"t":      tr,
		"flowOf": func(g drawing, lang, name string) flow { return flow{G: g, Lang: lang, Name: name} },
		"time": func(t any) string {
			var at time.Time
			switch v := t.(type) {
			case time.Time:
				at = v
			case *time.Time:
				if v == nil {
					return ""
				}
				at = *v
			}
			if at.IsZero() {
				return ""
			}
			return at.In(c.zone).Format("2006-01-02 15:04:05 MST")
		},
		"num": func(n int64) string {
			s := fmt.Sprint(n)
			if n < 10000 && n > -10000 {
				return s
			}
			var b strings.Builder
			neg := strings.HasPrefix(s, "-")
			s = strings.TrimPrefix(s, "-")
			if neg {
				b.WriteByte('-')
			}
			for i, ch := range s {
				if i > 0 && (len(s)-i)%3 == 0 {
					b.WriteByte(',')
				}
				b.WriteRune(ch)
			}
			return b.String()
		},
		"pct": func(f *float64) string {
			if f == nil {
				return "–"
			}
			return fmt.Sprintf("%.0f%%", *f*100)
		},
		"inc": func(n int) int { return n + 1 },
		// age is how long ago t was, in days, hours and minutes.
		"age": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			d := c.now().Sub(t).Round(time.Minute)
			switch {
			case d < time.Hour:
				return fmt.Sprintf("%dm", int(d.Minutes()))
			case d < 24*time.Hour:
				return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
			}
			return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
		},
		"last": func(ts []time.Time) time.Time {
			if len(ts) == 0 {
				return time.Time{}
			}
			return ts[len(ts)-1]
		},
		"shortHash": shortPlan,
		"sum": func(m map[string]int64) int64 {
			var n int64
			for _, v := range m {
				n += v
			}
			return n
		},
	}
}

// flow is what the "flow" template draws.
type flow struct {
	G    drawing
	Lang string
	Name string
}
