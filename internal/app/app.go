package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/huabu/huabu/internal/acceptlog"
	"github.com/huabu/huabu/internal/activities"
	"github.com/huabu/huabu/internal/app/embedded"
	"github.com/huabu/huabu/internal/auth"
	"github.com/huabu/huabu/internal/canvases"
	"github.com/huabu/huabu/internal/channels"
	"github.com/huabu/huabu/internal/channels/wecom"
	"github.com/huabu/huabu/internal/config"
	"github.com/huabu/huabu/internal/ingest"
	"github.com/huabu/huabu/internal/liveness"
	"github.com/huabu/huabu/internal/metrics"
	"github.com/huabu/huabu/internal/server"
	"github.com/huabu/huabu/internal/store"
	"github.com/huabu/huabu/internal/traits"
	"github.com/huabu/huabu/internal/triggers"
	"github.com/huabu/huabu/internal/workflows"
)

// Options configure Start.
type Options struct {
	Config  *config.Config
	DataDir string // embedded Temporal and the default store live here
	Logger  *slog.Logger
	// TemporalPort is the embedded frontend's port; 0 picks a free one.
	TemporalPort int
	// NoHTTP leaves the API off (config http.disabled does too).
	NoHTTP bool
	// NoDeploy skips deploying the config's canvases at start.
	NoDeploy bool
	// Progress, when set, is told what Start is doing, step by step (huabu
	// dev prints it: the first start takes a while).
	Progress func(step string)
	// HTTPClient is what channels call providers with (tests point it at fakes).
	HTTPClient *http.Client
	// Workers tunes the Temporal worker; zero values take defaults.
	MaxConcurrentActivities int
	// TemporalDynamicConfig overrides the embedded server's dynamic config
	// (tests: a low limit.historyCount.suggestContinueAsNew).
	TemporalDynamicConfig map[string]any
}

// App is a running Huabu process.
type App struct {
	cfg *config.Config
	// reaches caches audience estimates for policy.approval.above, by plan
	// hash (internal/app/governance.go).
	reachMu  sync.Mutex
	reaches  map[string]reachEstimate
	log      *slog.Logger
	store    *store.SQLite
	compiler *canvases.Compiler
	channels *channels.Set
	metrics  *activities.Metrics
	// providerMetrics and activityMetrics feed /metrics from the channels
	// and the Temporal worker (internal/metrics).
	providerMetrics *metrics.Providers
	activityMetrics *metrics.Activities
	acts            *activities.Activities // the worker's: estimates, previews and test sends use the same
	listener        net.Listener           // claimed at start, served once ready
	// adminListener is http.admin_listen's, when set: the admin API apart
	// from the public one.
	adminListener net.Listener
	authn         *auth.Authenticator
	embedded      *embedded.Server
	client        client.Client
	worker        worker.Worker
	http          *http.Server
	httpAddr      string
	adminHTTP     *http.Server
	adminAddr     string
	ready         atomic.Bool

	// The router and its feed run while this worker holds the router lease
	// (internal/app/leader.go, internal/app/router.go); nil otherwise.
	routingMu   sync.Mutex
	router      *triggers.Router
	feed        *eventFeed
	leader      *leadership
	stopRouting func()
	traits      *traits.Engine // nil when the config computes nothing
	stopTraits  func()
	// The accept log between the ingestion API and the store (ADR 006).
	acceptLog *acceptlog.Log
	// acceptBacklog is acceptLog for the traits engine's goroutine, which
	// starts before the log is opened.
	acceptBacklog atomic.Pointer[acceptlog.Log]
	applier       *ingest.Applier
	stopApplier   func()

	closeOnce sync.Once
	closeErr  error
	startedAt time.Time
	dataLock  *os.File // held while running: one Huabu per data directory
	// id names this worker among the store's workers: stable across
	// restarts when the data directory is its own (workerIdentity), else
	// new at each start.
	id string
}

// StorePath is where the SQLite store of a config lives. With PostgreSQL
// it is DATA/huabu-postgres, which holds no database: the files this
// process keeps beside its store (the ingestion accept log) go next to it.
func StorePath(cfg *config.Config, dataDir string) string {
	if cfg.Store.Driver == "postgres" {
		return filepath.Join(dataDir, "huabu-postgres")
	}
	if cfg.Store.DSN != "" {
		return cfg.Path(cfg.Store.DSN)
	}
	return filepath.Join(dataDir, "huabu.db")
}

// StoreName names the config's store for people: the SQLite file, or the
// PostgreSQL DSN with its password masked.
func StoreName(cfg *config.Config, dataDir string) string {
	if cfg.Store.Driver == "postgres" {
		return store.MaskDSN(cfg.Store.DSN)
	}
	return StorePath(cfg, dataDir)
}

// OpenStore opens the config's store: SQLite (the default) or PostgreSQL.
func OpenStore(ctx context.Context, cfg *config.Config, dataDir string) (*store.SQLite, error) {
	if cfg.Store.Driver == "postgres" {
		return store.OpenPostgres(ctx, cfg.Store.DSN)
	}
	return store.OpenSQLite(ctx, StorePath(cfg, dataDir))
}

// Start brings up every part and deploys the config's canvases. Close stops it.
func Start(ctx context.Context, opts Options) (_ *App, err error) {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.DataDir == "" {
		opts.DataDir = "data"
	}
	app := &App{cfg: cfg, log: log, startedAt: time.Now()}
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	defer func() {
		if err != nil {
			app.Close()
		}
	}()
	if app.compiler, err = cfg.Compiler(); err != nil {
		return nil, err
	}
	if app.authn, err = authenticator(cfg); err != nil {
		return nil, err
	}
	if cfg.Policy.Approval.On() && app.authn.Open() {
		return nil, errors.New("policy.approval needs auth.tokens: approval is by an approver who is not the version's author, and without tokens every caller is the same \"local\"")
	}
	// Claim the data directory and the API's address first: a second
	// Huabu on either is told which one holds it before anything starts.
	// With PostgreSQL the data directory holds this worker's accept log
	// and its identity (internal/app/identity.go): never two processes on one.
	if cfg.Temporal.Embedded() || (cfg.Store.Driver == "sqlite" && cfg.Store.DSN == "") || cfg.Store.Driver == "postgres" {
		if app.dataLock, err = lockDataDir(opts.DataDir, Holder{PID: os.Getpid(), StartedAt: app.startedAt, HTTP: cfg.HTTP.Listen, Config: cfg.File}); err != nil {
			return nil, err
		}
	}
	app.id = holderID()
	if app.dataLock != nil {
		if app.id, err = workerIdentity(opts.DataDir); err != nil {
			return nil, fmt.Errorf("worker id: %w", err)
		}
	}
	if !opts.NoHTTP && !cfg.HTTP.Disabled {
		if app.listener, err = listen("http.listen", cfg.HTTP.Listen); err != nil {
			return nil, err
		}
		if cfg.HTTP.AdminListen != "" {
			if app.adminListener, err = listen("http.admin_listen", cfg.HTTP.AdminListen); err != nil {
				return nil, err
			}
		}
	}
	progress("opening the store")
	if app.store, err = OpenStore(ctx, cfg, opts.DataDir); err != nil {
		return nil, err
	}
	httpClient := opts.HTTPClient
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	app.providerMetrics, app.activityMetrics = metrics.NewProviders(), metrics.NewActivities()
	deps := channels.Deps{HTTP: httpClient, Logger: log, Outbox: app.store, Contacts: app.store, Observer: app.providerMetrics, Calls: app.providerMetrics, Slots: app.store}
	if app.channels, err = channels.NewSet(cfg.Channels, cfg.ChannelProviders(), deps); err != nil {
		return nil, err
	}
	wecomAPI, err := wecom.Configured(cfg.Channels, cfg.ChannelProviders(), deps)
	if err != nil {
		return nil, err
	}

	if cfg.Temporal.Embedded() {
		progress("starting the embedded Temporal server (the first start creates its database)")
	} else {
		progress("connecting to Temporal at " + cfg.Temporal.Address)
	}
	hostPort, namespace := cfg.Temporal.Address, cfg.Temporal.Namespace
	if cfg.Temporal.Embedded() {
		app.embedded, err = embedded.Start(ctx, embedded.Options{
			DataDir:       filepath.Join(opts.DataDir, "temporal"),
			Namespace:     namespace,
			FrontendPort:  opts.TemporalPort,
			Logger:        log.With("component", "temporal"),
			DynamicConfig: opts.TemporalDynamicConfig,
		})
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%w\n(the embedded Temporal's port is taken: by another `huabu dev`, or a Temporal server. Stop it, or start this one with --temporal-port 0 for any free port)", err)
		}
		if err != nil {
			return nil, err
		}
		hostPort = app.embedded.HostPort()
		log.Info("embedded Temporal started", "address", hostPort, "data", filepath.Join(opts.DataDir, "temporal"))
	}
	app.client, err = client.DialContext(ctx, client.Options{
		HostPort: hostPort, Namespace: namespace,
		Logger: sdklog.NewStructuredLogger(slog.New(levelFilter{log.Handler(), slog.LevelWarn})),
	})
	if err != nil {
		return nil, fmt.Errorf("temporal at %s: %w", hostPort, err)
	}

	progress("starting the worker")
	app.metrics = activities.NewMetrics()
	acts := &activities.Activities{Store: app.store, Channels: app.channels, Compiler: app.compiler, Logger: log, Policy: policyOf(cfg.Policy), Metrics: app.metrics, Gate: app,
		Controls: app.store, ResumeGrace: cfg.Policy.ResumeGraceDuration()}
	staffActs := &activities.StaffActivities{Engine: acts, Store: app.store, Directory: app.store}
	if wecomAPI != nil {
		staffActs.WeCom = wecomAPI
	}
	app.acts = acts
	maxActs := opts.MaxConcurrentActivities
	if maxActs == 0 {
		maxActs = 64
	}
	app.worker = worker.New(app.client, cfg.Temporal.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:      maxActs,
		MaxConcurrentLocalActivityExecutionSize: 64,
		Interceptors:                            []interceptor.WorkerInterceptor{app.activityMetrics.Interceptor(), liveness.Interceptor(livenessInterval)},
		// Heartbeats must reach the server well within the activities'
		// heartbeat timeouts (20 s; workflows.livenessTimeout).
		MaxHeartbeatThrottleInterval: livenessInterval,
	})
	workflows.Register(app.worker)
	app.worker.RegisterWorkflowWithOptions(workflows.SendOne, workflows.SendOneOptions())
	app.worker.RegisterActivity(acts)
	app.worker.RegisterActivity(staffActs)
	if err := app.worker.Start(); err != nil {
		return nil, fmt.Errorf("temporal worker: %w", err)
	}

	if err := app.startTraits(); err != nil {
		return nil, err
	}
	if err := app.startDirectorySync(ctx); err != nil {
		log.Warn("WeCom directory sync schedule", "err", err)
	}
	if !opts.NoDeploy {
		progress("deploying the canvases")
		res, err := app.DeployConfigured(ctx)
		if errors.Is(err, ErrInvalidCanvases) {
			return nil, fmt.Errorf("%w:\n%s", err, res.Problems.Errors().Error())
		}
		if err != nil {
			return nil, err
		}
		for _, p := range res.Problems {
			log.Warn("canvas", "problem", p.String())
		}
		for _, d := range res.Canvases {
			log.Info("canvas deployed", "canvas", d.ID, "plan", d.Plan, "changed", d.Changed, "schedule", d.Schedule)
		}
	}
	// Events stored before this start and not routed then are routed now,
	// to the canvases just deployed, before the API takes new ones — by
	// this worker if it is the one that routes (the router lease).
	progress("routing stored events")
	if err := app.startRouting(ctx); err != nil {
		return nil, err
	}
	if err := app.startApplier(ctx, StorePath(cfg, opts.DataDir)); err != nil {
		return nil, fmt.Errorf("accept log: %w", err)
	}
	if app.listener != nil {
		if err := app.serveHTTP(); err != nil {
			return nil, err
		}
	}
	app.ready.Store(true)
	return app, nil
}

func (app *App) serveHTTP() error {
	ln := app.listener
	app.httpAddr = ln.Addr().String()
	h := server.New(app, app.log, app.authn)
	h.Registry().MustRegister(app.metrics.Collectors()...)
	h.Registry().MustRegister(app.providerMetrics.Collectors()...)
	h.Registry().MustRegister(app.activityMetrics.Collectors()...)
	h.Registry().MustRegister(metrics.NewStore(app.store, app.log))
	api, err := app.ingestAPI(h)
	if err != nil {
		ln.Close()
		return err
	}
	api.Register(h)
	app.withStaffRoutes(h)
	if err := app.withConsole(h); err != nil {
		ln.Close()
		return err
	}
	public := http.Handler(h)
	if app.adminListener != nil {
		public = h.Public()
		app.adminAddr = app.adminListener.Addr().String()
		app.adminHTTP = app.serve(app.adminListener, h.Admin())
	}
	app.http = app.serve(ln, public)
	if app.adminHTTP != nil {
		app.log.Info("HTTP API listening", "public", "http://"+app.httpAddr, "serves", "/v1, /wecom/callback, /healthz")
		app.log.Info("admin API listening", "address", "http://"+app.adminAddr)
	} else {
		app.log.Info("HTTP API listening", "address", "http://"+app.httpAddr)
	}
	if app.authn.Open() {
		app.log.Warn("auth.tokens is empty: the admin API answers loopback clients only (as admin); configure auth.tokens to use it from elsewhere or behind a proxy")
	} else {
		app.log.Info("admin API needs a bearer token", "tokens", len(app.cfg.Auth.Tokens))
	}
	return nil
}

func (app *App) serve(ln net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			app.log.Error("http server stopped", "address", ln.Addr().String(), "err", err)
		}
	}()
	return srv
}

// authenticator builds the admin API's token check from auth.tokens.
func authenticator(cfg *config.Config) (*auth.Authenticator, error) {
	tokens := make([]auth.Token, len(cfg.Auth.Tokens))
	for i, t := range cfg.Auth.Tokens {
		tokens[i] = auth.Token{Name: t.Name, Role: auth.Role(t.Role), Secret: t.Token}
	}
	return auth.New(tokens)
}

// Close stops the HTTP API, the event feed, the router, the traits engine,
// the worker, the client, Temporal and the store, in that order, so
// in-flight activities finish before what they use goes. Calling it again
// does nothing.
func (app *App) Close() error {
	app.closeOnce.Do(func() { app.closeErr = app.close() })
	return app.closeErr
}

func (app *App) close() error {
	app.ready.Store(false)
	var errs []error
	if app.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, app.http.Shutdown(ctx))
		if app.adminHTTP != nil {
			errs = append(errs, app.adminHTTP.Shutdown(ctx))
		}
		cancel()
	} else {
		for _, ln := range []net.Listener{app.listener, app.adminListener} {
			if ln != nil {
				_ = ln.Close() // claimed, never served
			}
		}
	}
	if app.stopApplier != nil {
		app.stopApplier()
	}
	if app.stopRouting != nil {
		// The feed, then the router (it starts the runs of entries still
		// gathering), then the cursor is saved and the lease released.
		app.stopRouting()
	}
	if app.stopTraits != nil {
		app.stopTraits()
	}
	if app.worker != nil {
		app.worker.Stop()
	}
	if app.client != nil {
		app.client.Close()
	}
	if app.embedded != nil {
		errs = append(errs, app.embedded.Stop())
	}
	if app.acceptLog != nil {
		errs = append(errs, app.acceptLog.Close())
	}
	if app.store != nil {
		errs = append(errs, app.store.Close())
	}
	if app.dataLock != nil {
		_ = app.dataLock.Truncate(0)
		errs = append(errs, app.dataLock.Close())
	}
	return errors.Join(errs...)
}

// Ready reports whether every part is up (GET /healthz).
func (app *App) Ready() bool { return app.ready.Load() }

// HTTPAddr is the API's address once listening.
func (app *App) HTTPAddr() string { return app.httpAddr }

// AdminAddr is the admin API's address: http.admin_listen's when set,
// else the one HTTPAddr serves everything on.
func (app *App) AdminAddr() string {
	if app.adminAddr != "" {
		return app.adminAddr
	}
	return app.httpAddr
}

// Client is the Temporal client.
func (app *App) Client() client.Client { return app.client }

// Store is the store.
func (app *App) Store() *store.SQLite { return app.store }

// ApplierTransactions is how many store transactions the accept log's
// applier has committed (0 before it started).
func (app *App) ApplierTransactions() int64 {
	if app.applier == nil {
		return 0
	}
	return app.applier.Transactions()
}

// Compiler is the canvas compiler of the config.
func (app *App) Compiler() *canvases.Compiler { return app.compiler }

// ActivitiesRan counts the executions of an activity (by its registered
// name, e.g. "Send") on this worker.
func (app *App) ActivitiesRan(name string) int64 { return app.activityMetrics.Ran(name) }

// TemporalAddress is the frontend the worker talks to.
func (app *App) TemporalAddress() string {
	if app.embedded != nil {
		return app.embedded.HostPort()
	}
	return app.cfg.Temporal.Address
}

// levelFilter drops records below a level (the SDK logs every poll at info).
type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (h levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// livenessInterval is how often a running activity tells Temporal its
// worker lives (internal/liveness).
const livenessInterval = 4 * time.Second
