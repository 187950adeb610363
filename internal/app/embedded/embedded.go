package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

const (
	// DBFile is the SQLite database file inside Options.DataDir.
	DBFile = "temporal.db"

	defaultNamespace = "default"
	defaultIP        = "127.0.0.1"
	clusterName      = "active"

	// numHistoryShards is fixed when the database is created: later the
	// server keeps the persisted value and only warns if the config differs.
	// One shard, as the dev server: on 2 cores 4 shards measured slower
	// (~60 vs ~95 workflows/s, same ~1,000 activities/s), since every shard
	// shares the one SQLite connection anyway.
	numHistoryShards = 1

	// levelOff silences the server logger.
	levelOff = slog.Level(100)

	// readyTimeout bounds the wait for the frontend to answer when the
	// caller's context has no deadline.
	readyTimeout = 30 * time.Second
)

// Options configures the embedded server.
type Options struct {
	// DataDir holds the SQLite database (DataDir/temporal.db), created if
	// missing. Empty means an in-memory database that dies with the process
	// (tests only).
	DataDir string
	// Namespace is registered at start if missing. Default "default".
	Namespace string
	// IP the frontend listens on. Default 127.0.0.1. The internal services
	// always listen on loopback.
	IP string
	// FrontendPort is the frontend gRPC port; 0 picks a free port.
	FrontendPort int
	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
	// LogLevel is the minimum level of server logs passed to Logger.
	// Default warn: Temporal logs a lot at info.
	LogLevel slog.Leveler
	// DynamicConfig overrides are merged over DefaultDynamicConfig. Keys are
	// Temporal dynamic config keys (case-insensitive), e.g. "matching.rps".
	DynamicConfig map[string]any
}

// Server is a running in-process Temporal server.
type Server struct {
	server    temporal.Server
	hostPort  string
	namespace string
	dataDir   string // "" for in-memory
	logLevel  *slog.LevelVar
	logger    *slog.Logger
	srvLog    *slogLogger

	stopOnce sync.Once
	stopErr  error
}

// openDirs guards against two servers on one database in the same process:
// the sqlite plugin shares one connection per DSN process-wide, so both would
// silently run the same shards.
var (
	openDirsMu sync.Mutex
	openDirs   = map[string]bool{}
)

// Start starts the server and returns once the frontend answers and the
// namespace is visible, so a client can be dialled straight away.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Namespace == "" {
		opts.Namespace = defaultNamespace
	}
	if opts.IP == "" {
		opts.IP = defaultIP
	}
	if net.ParseIP(opts.IP) == nil {
		return nil, fmt.Errorf("embedded Temporal: IP %q is not an IP address", opts.IP)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	if opts.LogLevel != nil {
		level.Set(opts.LogLevel.Level())
	}

	dataDir := ""
	if opts.DataDir != "" {
		abs, err := filepath.Abs(opts.DataDir)
		if err != nil {
			return nil, fmt.Errorf("embedded Temporal: data dir %q: %w", opts.DataDir, err)
		}
		dataDir = abs
		if err := claimDir(dataDir); err != nil {
			return nil, err
		}
	}
	s, err := start(ctx, opts, dataDir, level, opts.Logger)
	if err != nil {
		releaseDir(dataDir)
		return nil, err
	}
	return s, nil
}

func start(ctx context.Context, opts Options, dataDir string, level *slog.LevelVar, logger *slog.Logger) (*Server, error) {
	began := time.Now()
	sqlConf, err := prepareDatabase(dataDir, opts.Namespace)
	if err != nil {
		return nil, fmt.Errorf("embedded Temporal: %w", err)
	}

	if opts.FrontendPort != 0 {
		if err := checkPortFree(opts.IP, opts.FrontendPort); err != nil {
			return nil, fmt.Errorf("embedded Temporal: frontend port %d: %w", opts.FrontendPort, err)
		}
	}
	ports, err := freePorts(defaultIP, 4)
	if err != nil {
		return nil, fmt.Errorf("embedded Temporal: %w", err)
	}
	frontendPort := opts.FrontendPort
	if frontendPort == 0 {
		if frontendPort, err = pickFrontendPort(opts.IP, ports[3]); err != nil {
			return nil, fmt.Errorf("embedded Temporal: %w", err)
		}
	}
	dialIP := opts.IP
	if net.ParseIP(dialIP).IsUnspecified() {
		dialIP = defaultIP
	}
	hostPort := net.JoinHostPort(dialIP, strconv.Itoa(frontendPort))
	svcPorts := map[primitives.ServiceName]int{
		primitives.FrontendService: frontendPort,
		primitives.HistoryService:  ports[0],
		primitives.MatchingService: ports[1],
		primitives.WorkerService:   ports[2],
	}

	conf := serverConfig(opts.IP, hostPort, svcPorts, sqlConf)
	// Tag server logs with the frontend address: a process (or a test
	// binary) may run more than one server over its life.
	srvLogger := newSlogLogger(logger.With("frontend", hostPort), level)
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("embedded Temporal: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, srvLogger)
	if err != nil {
		return nil, fmt.Errorf("embedded Temporal: claim mapper: %w", err)
	}
	hosts := make(map[primitives.ServiceName]static.Hosts, len(svcPorts))
	for svc, port := range svcPorts {
		ip := defaultIP
		if svc == primitives.FrontendService {
			ip = dialIP
		}
		hosts[svc] = static.SingleLocalHost(net.JoinHostPort(ip, strconv.Itoa(port)))
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		// Static membership: no ringpop, no membership ports, no gossip.
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(srvLogger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicConfig(opts.DynamicConfig)),
		// No InterruptOn: the server must not install signal handlers or
		// block in Start; the host process owns shutdown.
	)
	if err != nil {
		return nil, fmt.Errorf("embedded Temporal: new server: %w", err)
	}
	if err := srv.Start(); err != nil {
		// Services that did start still hold ports; stop what we can.
		_ = srv.Stop()
		return nil, fmt.Errorf("embedded Temporal: start: %w", err)
	}
	s := &Server{
		server:    srv,
		hostPort:  hostPort,
		namespace: opts.Namespace,
		dataDir:   dataDir,
		logLevel:  level,
		logger:    logger,
		srvLog:    srvLogger,
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.stop()
		return nil, fmt.Errorf("embedded Temporal: not ready: %w", err)
	}
	logger.Info("embedded Temporal started",
		"frontend", hostPort, "namespace", opts.Namespace,
		"db", dbDescription(dataDir), "took", time.Since(began).Round(time.Millisecond))
	return s, nil
}

// pickFrontendPort uses the pre-picked loopback port when the frontend also
// listens on loopback, and otherwise picks one on the requested IP.
func pickFrontendPort(ip string, loopbackPort int) (int, error) {
	if ip == defaultIP {
		return loopbackPort, nil
	}
	p, err := freePorts(ip, 1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// HostPort is the frontend gRPC address to pass to client.Dial.
func (s *Server) HostPort() string { return s.hostPort }

// Namespace is the namespace registered at start.
func (s *Server) Namespace() string { return s.namespace }

// Stop shuts the server down. It is safe to call more than once.
//
// The SQLite connection itself stays open until the process exits (the
// server's sqlite plugin keeps one connection per database for the life of
// the process); a later Start on the same DataDir reuses it.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	// Shutdown routinely logs warnings (cancelled polls, closing shards) that
	// are not actionable; keep only errors from here on.
	if s.logLevel.Level() < slog.LevelError {
		s.logLevel.Set(slog.LevelError)
	}
	s.srvLog.setStopping()
	began := time.Now()
	err := s.server.Stop()
	// Some server goroutines outlive Stop and log their cancellation; the
	// server is gone, so nothing they say is actionable any more.
	s.logLevel.Set(levelOff)
	releaseDir(s.dataDir)
	s.logger.Info("embedded Temporal stopped", "took", time.Since(began).Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("embedded Temporal: stop: %w", err)
	}
	return nil
}

// waitReady dials the frontend and waits until the namespace is served: the
// services report started before the frontend's namespace cache has loaded.
func (s *Server) waitReady(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	var c client.Client
	var err error
	for {
		if c == nil {
			c, err = client.DialContext(ctx, client.Options{
				HostPort:  s.hostPort,
				Namespace: s.namespace,
				Logger:    sdklog.NewStructuredLogger(s.srvLog.SLog()),
			})
		}
		if c != nil {
			_, err = c.WorkflowService().DescribeNamespace(ctx,
				&workflowservice.DescribeNamespaceRequest{Namespace: s.namespace})
			if err == nil {
				c.Close()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if c != nil {
				c.Close()
			}
			return errors.Join(ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// prepareDatabase returns the SQL config for dataDir, creating the schema and
// the namespace when they are missing.
func prepareDatabase(dataDir, namespace string) (*config.SQL, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	if dataDir == "" {
		// The plugin creates the schema itself for in-memory databases. The
		// random name keeps servers in one process apart (shared cache).
		conf.DatabaseName = fmt.Sprintf("huabu-%d", rand.Int64())
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
	} else {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		conf.DatabaseName = filepath.Join(dataDir, DBFile)
		conf.ConnectAttributes = fileConnectAttributes()
		conf.MaxConns = maxConns
		conf.MaxIdleConns = maxConns
		if err := ensureSchema(conf); err != nil {
			return nil, err
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, namespace, false, nil)
	if err != nil {
		return nil, fmt.Errorf("namespace %q: %w", namespace, err)
	}
	// No-op when the namespace already exists.
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("register namespace %q: %w", namespace, err)
	}
	return conf, nil
}

func serverConfig(ip, hostPort string, ports map[primitives.ServiceName]int, sqlConf *config.SQL) *config.Config {
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = defaultIP
	// Metrics and pprof stay off (nil / port 0): nothing to scrape them in
	// dev, and a Prometheus listener would be one more port to pick.

	const store = "sqlite-default"
	conf.Persistence.DefaultStore = store
	conf.Persistence.VisibilityStore = store
	conf.Persistence.NumHistoryShards = numHistoryShards
	conf.Persistence.DataStores = map[string]config.DataStore{store: {SQL: sqlConf}}

	conf.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             hostPort,
				// Used only when the database is new; afterwards the
				// persisted cluster ID wins.
				ClusterID: uuid.NewString(),
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"

	svc := func(name primitives.ServiceName, bindIP string) config.Service {
		var s config.Service
		s.RPC.GRPCPort = ports[name]
		s.RPC.BindOnIP = bindIP
		return s
	}
	conf.Services = map[string]config.Service{
		string(primitives.FrontendService): svc(primitives.FrontendService, ip),
		string(primitives.HistoryService):  svc(primitives.HistoryService, defaultIP),
		string(primitives.MatchingService): svc(primitives.MatchingService, defaultIP),
		string(primitives.WorkerService):   svc(primitives.WorkerService, defaultIP),
	}

	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	// The worker service (schedules, batch jobs, ...) dials the frontend here.
	conf.PublicClient.HostPort = hostPort
	return &conf
}

// dynamicConfig merges the caller's overrides over DefaultDynamicConfig.
func dynamicConfig(overrides map[string]any) dynamicconfig.StaticClient {
	dc := make(dynamicconfig.StaticClient, len(DefaultDynamicConfig)+len(overrides))
	for k, v := range DefaultDynamicConfig {
		dc[dynamicconfig.MakeKey(k)] = v
	}
	for k, v := range overrides {
		dc[dynamicconfig.MakeKey(k)] = v
	}
	return dc
}

func claimDir(dir string) error {
	openDirsMu.Lock()
	defer openDirsMu.Unlock()
	if openDirs[dir] {
		return fmt.Errorf("embedded Temporal: a server is already running on %s in this process", dir)
	}
	openDirs[dir] = true
	return nil
}

func releaseDir(dir string) {
	if dir == "" {
		return
	}
	openDirsMu.Lock()
	defer openDirsMu.Unlock()
	delete(openDirs, dir)
}

func dbDescription(dataDir string) string {
	if dataDir == "" {
		return "in-memory"
	}
	return filepath.Join(dataDir, DBFile)
}
