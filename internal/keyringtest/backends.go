package keyringtest

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/phivault/phivault/internal/testenv"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// SoftHSM2 settings of the token SetUpSoftHSM makes.
const (
	SoftHSMModule = "/usr/lib/softhsm/libsofthsm2.so"
	SoftHSMToken  = "test"
	SoftHSMPIN    = "1234"
	SoftHSMSOPIN  = "5678"
)

// The local-kms server the tests run against. Keep in step with
// .ci/setup-kms.sh.
const (
	LocalKMSModule = "github.com/nsmithuk/local-kms@v0.0.0-20260228092603-2a5e92d09ab6"
	KMSRegion      = "eu-west-2"
	KMSAccount     = "111122223333"
)

// LocalKMS is a local-kms server started by a test on loopback.
type LocalKMS struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	kill     sync.Once
	done     chan struct{} // closed when the process has exited
}

// Stop kills the server and waits for it to exit. It may be called more
// than once.
func (s *LocalKMS) Stop() {
	s.kill.Do(func() { s.cmd.Process.Kill() })
	<-s.done
}

// localKMSPath returns the path of the local-kms binary, or "" if it is
// neither on PATH nor in GOBIN or GOPATH/bin.
func localKMSPath() string { return testenv.GoInstalled("local-kms") }

var localKMSStarted = regexp.MustCompile(`Local KMS started on \S*:(\d+)`)

// StartLocalKMS starts local-kms on a port of its choosing, with its data and
// log (it logs every call) in a temporary directory, and stops it when the
// test ends. It skips the test if local-kms is not installed.
func StartLocalKMS(tb testing.TB) *LocalKMS {
	tb.Helper()
	bin := localKMSPath()
	if bin == "" {
		tb.Skip("local-kms not found on PATH or in $(go env GOPATH)/bin: run .ci/setup-kms.sh (go install " + LocalKMSModule + ")")
	}
	dir := tb.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "local-kms.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PORT=0", // prints the port it chose
		"KMS_DATA_PATH="+dir,
		"KMS_SEED_PATH="+filepath.Join(dir, "seed.yaml"), // absent: no seeding
		"KMS_REGION="+KMSRegion,
		"KMS_ACCOUNT_ID="+KMSAccount,
	)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start local-kms: %v", err)
	}
	s := &LocalKMS{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		pw.Close()
		close(s.done)
	}()
	// Copy the log to the file, watching for the port.
	port := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		defer close(port)
		sc := bufio.NewScanner(pr)
		found := false
		for sc.Scan() {
			fmt.Fprintln(logFile, sc.Text())
			if m := localKMSStarted.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				port <- m[1]
			}
		}
		io.Copy(logFile, pr)
	}()
	tb.Cleanup(func() {
		s.Stop()
		<-copied
		logFile.Close()
	})
	select {
	case p, ok := <-port:
		if !ok {
			s.Stop()
			tb.Fatalf("local-kms exited before listening; see %s", logFile.Name())
		}
		// It listens on all interfaces; talk to it on loopback only.
		s.Endpoint = "http://" + net.JoinHostPort("127.0.0.1", p)
	case <-time.After(30 * time.Second):
		tb.Fatalf("local-kms did not start within 30s; see %s", logFile.Name())
	}
	return s
}

// ErrNoSoftHSM is wrapped by SetUpSoftHSM's error when SoftHSM2 is not
// installed: a reason to skip. Any other error is a failure.
var ErrNoSoftHSM = errors.New("SoftHSM2 is not installed: run .ci/setup-softhsm.sh")

// SetUpSoftHSM writes a SoftHSM2 configuration with a token directory in a
// fresh temporary directory, points this process's SOFTHSM2_CONF at it and
// initializes the token SoftHSMToken. It returns the directory, which the
// caller removes; child processes find the token through the inherited
// SOFTHSM2_CONF. The error wraps ErrNoSoftHSM when SoftHSM2 is absent.
func SetUpSoftHSM() (string, error) {
	if _, err := os.Stat(SoftHSMModule); err != nil {
		return "", fmt.Errorf("%w (%s missing)", ErrNoSoftHSM, SoftHSMModule)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return "", fmt.Errorf("%w (softhsm2-util missing)", ErrNoSoftHSM)
	}
	dir, err := os.MkdirTemp("", "phivault-softhsm-")
	if err != nil {
		return "", err
	}
	tokens := filepath.Join(dir, "tokens")
	conf := filepath.Join(dir, "softhsm2.conf")
	text := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return dir, err
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return dir, err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", SoftHSMToken, "--pin", SoftHSMPIN, "--so-pin", SoftHSMSOPIN).CombinedOutput()
	if err != nil {
		return dir, fmt.Errorf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return dir, nil
}
