package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// iptables runs the iptables binaries. Every command starts from the
// calling goroutine's thread, so it acts in that thread's network
// namespace (see Run).
type iptables struct {
	iptables, restore, save string
}

func (ipt *iptables) run(ctx context.Context, name string, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Restore applies an iptables-restore input without flushing the tables:
// only the chains the input declares are replaced, in one transaction.
func (ipt *iptables) Restore(ctx context.Context, input []byte) error {
	_, err := ipt.run(ctx, ipt.restore, input, "-w", "5", "--noflush")
	if err != nil {
		return annotateRestoreError(err, input)
	}
	return nil
}

// annotateRestoreError adds the failing line when iptables-restore names one
// ("line N failed"), so that a bad rule can be found in the log.
func annotateRestoreError(err error, input []byte) error {
	msg := err.Error()
	i := strings.Index(msg, "line ")
	if i < 0 {
		return err
	}
	var n int
	if _, serr := fmt.Sscanf(msg[i:], "line %d", &n); serr != nil || n <= 0 {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(input))
	sc.Buffer(nil, 1<<20)
	for l := 1; sc.Scan(); l++ {
		if l == n {
			return fmt.Errorf("%w (line %d: %s)", err, n, sc.Text())
		}
	}
	return err
}

// EnsureChain creates a chain if it is missing.
func (ipt *iptables) EnsureChain(ctx context.Context, table, chain string) error {
	if _, err := ipt.run(ctx, ipt.iptables, nil, "-w", "5", "-t", table, "-n", "-L", chain); err == nil {
		return nil
	}
	_, err := ipt.run(ctx, ipt.iptables, nil, "-w", "5", "-t", table, "-N", chain)
	return err
}

// EnsureJump inserts a jump rule at the top of a built-in chain unless it is
// already there (anywhere in it): idempotent, and it leaves other rules in
// the chain alone.
func (ipt *iptables) EnsureJump(ctx context.Context, j jumpRule) (bool, error) {
	if has, err := ipt.hasRule(ctx, j); has || err != nil {
		return false, err
	}
	_, err := ipt.run(ctx, ipt.iptables, nil, append([]string{"-w", "5", "-t", j.table, "-I", j.chain}, j.args...)...)
	return err == nil, err
}

// hasRule reports whether a rule exists. iptables -C exits 1 when it does
// not (or when its target chain does not exist); any other failure (the
// xtables lock, say) is an error, not an answer, so that a transient one
// never adds a second copy of a jump.
func (ipt *iptables) hasRule(ctx context.Context, j jumpRule) (bool, error) {
	_, err := ipt.run(ctx, ipt.iptables, nil, append([]string{"-w", "5", "-t", j.table, "-C", j.chain}, j.args...)...)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return false, nil
	case errors.As(err, &exit) && (strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "No chain/target/match")):
		// The jump's target chain is gone (exit 2): so is the rule.
		return false, nil
	}
	return false, err
}

// DeleteJump removes every copy of a jump rule.
func (ipt *iptables) DeleteJump(ctx context.Context, j jumpRule) error {
	for {
		has, err := ipt.hasRule(ctx, j)
		if !has || err != nil {
			return err
		}
		if _, err := ipt.run(ctx, ipt.iptables, nil, append([]string{"-w", "5", "-t", j.table, "-D", j.chain}, j.args...)...); err != nil {
			return err
		}
	}
}

// Chains lists the chains of a table, from iptables-save.
func (ipt *iptables) Chains(ctx context.Context, table string) ([]string, error) {
	out, err := ipt.run(ctx, ipt.save, nil, "-t", table)
	if err != nil {
		return nil, err
	}
	return parseChains(out), nil
}

// parseChains reads the chain declarations (":NAME POLICY [p:b]") of
// iptables-save output.
func parseChains(save []byte) []string {
	var chains []string
	for _, line := range bytes.Split(save, []byte("\n")) {
		if len(line) > 1 && line[0] == ':' {
			if f := bytes.Fields(line[1:]); len(f) > 0 {
				chains = append(chains, string(f[0]))
			}
		}
	}
	return chains
}

// lookPath checks that a binary exists, with an error that says what it is
// for.
func lookPath(name, what string) error {
	if _, err := exec.LookPath(name); err != nil {
		return fmt.Errorf("%s (%s) not found: %w", name, what, err)
	}
	return nil
}
