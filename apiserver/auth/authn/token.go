package authn

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/kubeish/kubeish/apiserver/auth/user"
)

// ErrInvalidToken is the answer to a bearer token the file does not hold.
var ErrInvalidToken = errors.New("invalid bearer token")

// TokenFile authenticates "Authorization: Bearer <token>" requests against
// a static token file (Kubernetes' --token-auth-file).
type TokenFile struct {
	tokens map[string]*user.Info
}

// LoadTokenFile reads a token file; see ParseTokenFile for the format.
func LoadTokenFile(path string) (*TokenFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ParseTokenFile(f)
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return t, nil
}

// ParseTokenFile reads Kubernetes' static token CSV: one user a line,
//
//	token,user,uid,"group1,group2"
//
// with the groups column optional and further columns ignored. Blank lines
// and lines starting with # are skipped. A malformed line is an error
// naming the line (never the token).
func ParseTokenFile(r io.Reader) (*TokenFile, error) {
	t := &TokenFile{tokens: map[string]*user.Info{}}
	seen := map[string]int{} // token → line
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cr := csv.NewReader(strings.NewReader(line))
		cr.FieldsPerRecord = -1
		cr.TrimLeadingSpace = true
		rec, err := cr.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(rec) < 3 {
			return nil, fmt.Errorf("line %d: needs at least 3 columns (token, user name, uid), found %d", n, len(rec))
		}
		token, name, uid := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1]), strings.TrimSpace(rec[2])
		if token == "" {
			return nil, fmt.Errorf("line %d: empty token", n)
		}
		if strings.ContainsAny(token, " \t") {
			return nil, fmt.Errorf("line %d: a token may not contain spaces", n)
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: empty user name", n)
		}
		if prev, dup := seen[token]; dup {
			return nil, fmt.Errorf("line %d: the same token as line %d", n, prev)
		}
		seen[token] = n
		u := &user.Info{Name: name, UID: uid}
		if len(rec) >= 4 {
			for _, g := range strings.Split(rec[3], ",") {
				if g = strings.TrimSpace(g); g != "" {
					u.Groups = append(u.Groups, g)
				}
			}
		}
		t.tokens[token] = u
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// Len is the number of tokens.
func (t *TokenFile) Len() int { return len(t.tokens) }

// AuthenticateRequest implements Authenticator.
func (t *TokenFile) AuthenticateRequest(r *http.Request) (*user.Info, bool, error) {
	token, ok := BearerToken(r)
	if !ok || t == nil {
		return nil, false, nil
	}
	u, found := t.tokens[token]
	if !found {
		return nil, false, ErrInvalidToken
	}
	out := *u
	return &out, true, nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header; ok is false when there is none.
func BearerToken(r *http.Request) (token string, ok bool) {
	parts := strings.Fields(r.Header.Get("Authorization"))
	if len(parts) != 2 || !strings.EqualFold(parts[0], "bearer") {
		return "", false
	}
	return parts[1], true
}
