// Command pulumi-language-python is lattigo-fleet's own Python language host for the Pulumi engine.
//
// Why it exists: Pulumi's language host lives in its own Go module, which the module proxy this project
// builds from does not serve, while the engine (pkg/v3) and the SDK module (sdk/v3) are served. The language
// host's job is small and specified by the LanguageRuntime gRPC service in sdk/v3/proto: print a port, then on
// Run start `pulumi-language-python-exec` (shipped as a script in sdk/v3 and copied beside this binary at setup)
// with the monitor/engine addresses and the stack's configuration. This host implements exactly that, for a
// project that keeps its own virtual environment (Pulumi.yaml runtime.options.virtualenv). Plugin discovery
// (GetRequiredPackages) reports none: lattigo-fleet only uses dynamic providers, which need no downloads.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The Python side reports "I already told the user what went wrong" with this exit code.
const exitCodeUserActionableMessage = 32

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	execScript string // pulumi-language-python-exec, next to this binary

	mu            sync.Mutex
	engineAddress string
}

// exitWithEngine ends the language host when the engine that started it is gone (a CI timeout kills `pulumi`
// alone): this process is then adopted, and its parent pid changes. The program it runs does the same.
func exitWithEngine() {
	engine := os.Getppid()
	go func() {
		for {
			time.Sleep(500 * time.Millisecond)
			if os.Getppid() != engine {
				os.Exit(3)
			}
		}
	}()
}

// exitWhenAsked ends the language host on SIGINT or SIGTERM. The engine stops a plugin by sending SIGINT to its
// process group, then waits 5 s before it sends SIGKILL. A process started with SIGINT ignored (a CI step's
// background job, `nohup`, `cmd &` in a script) inherits that, and Go keeps an inherited SIGINT ignored unless
// it is asked for with signal.Notify: every run started that way stalled 5 s while the engine closed the
// host it had asked for the required plugins, before the program even started.
func exitWhenAsked() {
	asked := make(chan os.Signal, 1)
	signal.Notify(asked, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-asked
		os.Exit(0)
	}()
}

func main() {
	// The engine passes its own address as the last positional argument, and may add flags we ignore.
	flag.String("tracing", "", "ignored: tracing endpoint")
	flag.String("root", "", "ignored: project root")
	flag.String("virtualenv", "", "ignored: the virtualenv comes from the RunRequest's program options")
	flag.Parse()

	self, err := os.Executable()
	if err != nil {
		fail("cannot locate own executable: %v", err)
	}
	execScript := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(execScript); err != nil {
		fail("missing executor %s (re-run the project's setup): %v", execScript, err)
	}

	exitWithEngine()
	exitWhenAsked()

	host := &languageHost{execScript: execScript}
	if args := flag.Args(); len(args) > 0 {
		host.engineAddress = args[len(args)-1]
	}

	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		fail("could not start language host RPC server: %v", err)
	}
	// The spawner reads the port from our first line of output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fail("language host RPC stopped serving: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: "+format+"\n", args...)
	os.Exit(1)
}

func (h *languageHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

func (h *languageHost) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *languageHost) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

// pythonFor picks the interpreter: the project's virtualenv when Pulumi.yaml names one, else
// PULUMI_PYTHON_CMD or python3 from PATH (as the upstream host does).
func pythonFor(info *pulumirpc.ProgramInfo) (string, error) {
	if info != nil && info.GetOptions() != nil {
		if venv, ok := info.GetOptions().AsMap()["virtualenv"].(string); ok && venv != "" {
			if !filepath.IsAbs(venv) {
				venv = filepath.Join(info.GetRootDirectory(), venv)
			}
			python := filepath.Join(venv, "bin", "python")
			if _, err := os.Stat(python); err != nil {
				return "", fmt.Errorf("the 'virtualenv' option in Pulumi.yaml is %q, but %s does not exist: "+
					"run the project's setup (make venv)", venv, python)
			}
			return python, nil
		}
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd, nil
	}
	return "python3", nil
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	python, err := pythonFor(req.GetInfo())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	h.mu.Lock()
	engine := h.engineAddress
	h.mu.Unlock()

	program := req.GetProgram()
	if info := req.GetInfo(); info != nil && info.GetEntryPoint() != "" {
		program = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
	}
	if program == "" {
		program = "."
	}

	args := []string{"-u", h.execScript}
	add := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", engine)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("organization", req.GetOrganization())
	if info := req.GetInfo(); info != nil {
		add("root_directory", info.GetRootDirectory())
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	config := req.GetConfig()
	if config == nil {
		config = map[string]string{} // the Python side expects an object, never null
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("serialising configuration: %w", err)
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secretKeysJSON, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, fmt.Errorf("serialising secret configuration keys: %w", err)
	}

	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(),
		"PULUMI_CONFIG="+string(configJSON),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeysJSON),
	)
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitCodeUserActionableMessage {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}
