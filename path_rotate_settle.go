package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/mitchellh/mapstructure"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// A rotation is unsettled when it sent IAM a change (create a key, change the
// password) and got no answer it can trust: a timeout, a reset, an answer cut
// short, or a 5xx, which a gateway sends as readily after IAM applied the
// change as before. An answer that never came is not a no. The rotation's
// write-ahead log entry then stays, marked with when it may be settled, and
// Vault's rollback settles it by evidence no sooner than walRollbackMinAge
// after the lost answer: for a key, by listing the user's keys for the
// marker in their description; for a password, by logging in, the stored
// password first. Until then no client on any node logs in with the
// password method (see loginGate), because either password may be the wrong
// one and every failed login counts towards IAM's lockout.

// settleState is what a rotation's log entry records about an outcome it
// does not know. Times are RFC 3339 strings: log entries travel as JSON.
type settleState struct {
	Unsettled bool   `mapstructure:"unsettled" json:"unsettled,omitempty"`
	Step      string `mapstructure:"step" json:"step,omitempty"`             // the change whose answer was lost
	Since     string `mapstructure:"since" json:"since,omitempty"`           // when
	NotBefore string `mapstructure:"not_before" json:"not_before,omitempty"` // no settling before this
}

// outcomeUnknown reports whether IAM may have carried out a call that
// changes something although the engine did not learn it. Only a 4xx answer
// says IAM did not do it, and only the client's own refusals (its rate
// limit, a login it did not make) say the call was never sent. Everything
// else is unknown: no complete answer, a 5xx (a gateway's 502/503/504, or IAM
// failing after it acted), a 3xx, and a 2xx whose body could not be read or
// used (IAM said yes; what it said is lost).
func outcomeUnknown(err error) bool {
	var e *huawei.Error
	if !errors.As(err, &e) {
		return true
	}
	switch {
	case e.Status >= 400 && e.Status < 500:
		return false
	case e.Status != 0:
		return true
	}
	switch e.Kind {
	case huawei.KindRateLimited, huawei.KindSettling, huawei.KindRefused, huawei.KindNotFound, huawei.KindThrottled:
		// Without a status these are the client's own: nothing was sent.
		return false
	}
	return true
}

// unsettle records in the log that step's outcome is unknown: the entry is
// written again (a new id, so Vault's rollback counts its age from now) and
// the old one removed. It returns when the entry may be settled. If the
// entry cannot be rewritten, the old one stays and is settled as a crash's.
func (b *backend) unsettle(ctx context.Context, s logical.Storage, kind, walID string, st *settleState, data any, step string) time.Time {
	now := b.now().UTC()
	notBefore := now.Add(walRollbackMinAge)
	*st = settleState{Unsettled: true, Step: step, Since: now.Format(time.RFC3339Nano), NotBefore: notBefore.Format(time.RFC3339Nano)}
	if _, err := framework.PutWAL(ctx, s, kind, data); err != nil {
		b.logger.Warn("rotation: could not mark its write-ahead log entry unsettled; the rollback settles it as a crash's", "error", err.Error())
		return notBefore
	}
	if err := framework.DeleteWAL(ctx, s, walID); err != nil {
		b.logger.Warn("rotation: could not remove its first write-ahead log entry", "error", err.Error())
	}
	return notBefore
}

// errSettleLater keeps a log entry for a later rollback.
var errSettleLater = errors.New("the rotation's outcome is settled later")

// settleDue reports errSettleLater while an unsettled entry is younger than
// its NotBefore: Vault's rollback may run it early (its own clock, the
// "immediate" flag), and evidence taken too soon after a lost answer can be
// overtaken by IAM applying the change late.
func (b *backend) settleDue(st settleState) error {
	if !st.Unsettled || st.NotBefore == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, st.NotBefore)
	if err == nil && b.now().Before(t) {
		return errSettleLater
	}
	return nil
}

// pendingRotation is a rotation's log entry, as the config read, the login
// gate and the next rotation see it.
type pendingRotation struct {
	kind     string
	created  time.Time
	password *passwordWAL
	key      *accessKeyWAL
}

func (p *pendingRotation) settle() settleState {
	if p.password != nil {
		return p.password.settleState
	}
	return p.key.settleState
}

// pendingRotations reads the rotations' log entries from storage.
func pendingRotations(ctx context.Context, s logical.Storage) ([]pendingRotation, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return nil, err
	}
	var out []pendingRotation
	for _, id := range ids {
		e, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue
		}
		p := pendingRotation{kind: e.Kind, created: time.Unix(e.CreatedAt, 0).UTC()}
		switch e.Kind {
		case walKindPassword:
			p.password = &passwordWAL{}
			err = mapstructure.Decode(e.Data, p.password)
		case walKindAccessKey:
			p.key = &accessKeyWAL{}
			err = mapstructure.Decode(e.Data, p.key)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// pendingOf returns the first pending rotation of kind, or nil.
func pendingOf(ctx context.Context, s logical.Storage, kind string) (*pendingRotation, error) {
	all, err := pendingRotations(ctx, s)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].kind == kind {
			return &all[i], nil
		}
	}
	return nil, nil
}

// loginGate is asked before every login of a client built from a stored
// config (with password): while a password rotation's log entry is
// pending, no login, except with the new password once IAM confirmed it.
// Derived from storage at each login, so a client built after a config
// write, a plugin reload, a restart, or on another node, honours it.
func (b *backend) loginGate(s logical.Storage, password secret) func(context.Context) error {
	return func(ctx context.Context) error {
		p, err := pendingOf(ctx, s, walKindPassword)
		if err != nil {
			return &huawei.Error{Kind: huawei.KindSettling, Service: "IAM",
				Detail: "was not asked for a token: the write-ahead log, which says whether a password rotation is unsettled, could not be read"}
		}
		if p == nil || (p.password.Applied && p.password.Password == string(password)) {
			return nil
		}
		if b.rotation.running() != nil {
			// This node's rotation: the read waits for it (withRetryOnRotation).
			return errRotationRunning()
		}
		return settlingError(p)
	}
}

func errRotationRunning() *huawei.Error {
	return &huawei.Error{Kind: huawei.KindRefused, Service: "IAM",
		Detail: "was not asked for a token: a rotation is replacing the password, and a login with the old one would count towards IAM's lockout"}
}

// settlingError is what a read that needed a login gets while a password
// rotation is unsettled: a 503 that says so.
func settlingError(p *pendingRotation) *huawei.Error {
	when := "within a minute or two"
	if st := p.settle(); st.NotBefore != "" {
		when = "from " + st.NotBefore
	}
	return &huawei.Error{Kind: huawei.KindSettling, Service: "IAM",
		Detail: "was not asked for a token: a root-credential rotation is being settled (IAM may or may not have taken the new password), " +
			"and no login is made with either password until the write-ahead log rollback settles it, " + when +
			"; answers are served from the cache meanwhile; see rotation_unsettled in the config read"}
}

// unsettledFields are the config read's view of a pending rotation.
func unsettledFields(ctx context.Context, s logical.Storage) (map[string]any, error) {
	out := map[string]any{"rotation_unsettled": false, "rotation_unsettled_since": "", "rotation_settle_after": "", "rotation_unsettled_detail": ""}
	all, err := pendingRotations(ctx, s)
	if err != nil {
		return nil, err
	}
	for i := range all {
		p := &all[i]
		st := p.settle()
		out["rotation_unsettled"] = true
		since := st.Since
		if since == "" {
			since = p.created.Format(time.RFC3339)
		}
		out["rotation_unsettled_since"] = since
		after := st.NotBefore
		if after == "" {
			after = p.created.Add(walRollbackMinAge).Format(time.RFC3339)
		}
		out["rotation_settle_after"] = after
		out["rotation_unsettled_detail"] = p.describe()
		if st.Unsettled {
			break // the one that matters most
		}
	}
	return out, nil
}

// describe says what a pending rotation is waiting for, for an operator.
func (p *pendingRotation) describe() string {
	st := p.settle()
	switch {
	case p.password != nil && p.password.Stuck:
		return "IAM refused both the stored password and the rotation's new one: no login is made until an operator writes " +
			"the IAM user's current password to the config (the rollback then tries it first)"
	case p.password != nil && p.password.Applied:
		return "IAM took the new password but it is not stored yet: the write-ahead log rollback stores it"
	case p.password != nil && st.Unsettled:
		return fmt.Sprintf("the answer to %q was lost, so IAM may or may not have the new password: no login is made until the "+
			"write-ahead log rollback settles it by logging in with the stored password first, and with the new one (kept "+
			"seal-wrapped in the log) only if IAM refuses that", st.Step)
	case p.password != nil:
		return "a password rotation is running, or was interrupted: the write-ahead log rollback settles it"
	case st.Unsettled:
		return fmt.Sprintf("the answer to %q was lost, so IAM may have created a key: the write-ahead log rollback looks for "+
			"keys with the marker %q in their description and deletes those the config does not use", st.Step, rotationKeyMarker+p.key.Marker)
	default:
		return "an access-key rotation is running, was interrupted, or could not delete the key it replaced: the write-ahead log " +
			"rollback deletes what it left (keys with the marker " + strconv.Quote(rotationKeyMarker+p.key.Marker) + ", and the replaced key)"
	}
}

// refuseWhileUnsettled is the next rotation's answer while one is pending.
func refuseWhileUnsettled(p *pendingRotation) error {
	after := p.created.Add(walRollbackMinAge)
	if t, err := time.Parse(time.RFC3339Nano, p.settle().NotBefore); err == nil {
		after = t
	}
	return &rotationError{status: http.StatusBadRequest, step: "check for an unfinished rotation", err: fmt.Errorf(
		"a previous rotation is not settled yet (%s); the write-ahead log rollback settles it from %s: rotate again after that",
		p.describe(), after.UTC().Format(time.RFC3339)), left: "nothing was changed"}
}
