//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/smsfake"
)

// TestRaftClusterSurvivesLosingTheActiveNode runs three Vault servers with
// integrated storage on 127.0.0.1, writes config through the leader, reads
// through a standby, kills the active node and checks that a new leader serves
// the same config and reads.
func TestRaftClusterSurvivesLosingTheActiveNode(t *testing.T) {
	fake := startFake(t, smsfake.Options{
		Tokens:     []string{smsToken},
		AccessKeys: map[string]string{rotAK: rotSK},
		Users:      []smsfake.User{{Domain: rotDomain, Name: rotUser, Password: rotPW}},
		Tasks:      map[string]string{"demo-task-0001": passphrase, taskA: "team-a-passphrase-77", taskB: "team-b-passphrase-88"},
	})

	nodes := startRaftCluster(t)
	leader := nodes[0]
	leader.register(version1)
	leader.mount("sms", fake, smsToken, "cache_ttl=2m")
	leader.root("write", "sms/config", "request_timeout=9s")
	leader.root("write", "sms/roles/ops", "enterprise_project_ids=0", "task_name_globs=demo-*")
	// An access key that the leader rotates before it is lost: the new key
	// must reach the node that takes over.
	leader.root("secrets", "enable", "-path=sms-aksk", pluginName)
	leader.root("write", "sms-aksk/config", "endpoint="+fake.URL, "iam_endpoint="+fake.URL,
		"access_key="+rotAK, "secret_key="+rotSK)
	leader.root("write", "-f", "sms-aksk/config/rotate-root")
	require.False(t, fake.KeyWorks(rotAK, rotSK), "the old key is gone at IAM")
	for _, k := range fake.Keys(rotDomain, rotUser) {
		neverLog(k.Secret)
	}

	standby := nodes[1]
	require.False(t, isActive(standby))
	require.Equal(t, passphrase, strings.TrimSpace(standby.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")),
		"a standby forwards the read to the active node")
	require.Equal(t, passphrase, strings.TrimSpace(standby.root("read", "-field=passphrase", "sms/roles/ops/passphrase/demo-task-0001")),
		"and a role read")

	leader.kill()
	survivors := nodes[1:]
	active := waitForNewActive(t, survivors)
	t.Logf("%s took over", active.name)

	for _, n := range survivors {
		data, err := n.readJSON(n.rootToken, "sms/config")
		require.NoError(t, err, n.name)
		require.Equal(t, fake.URL, data["endpoint"], n.name)
		require.EqualValues(t, 120, data["cache_ttl"], n.name)
		require.EqualValues(t, 9, data["request_timeout"], "the last write before the failover is kept")
		require.Equal(t, true, data["token_set"])
		require.Equal(t, passphrase, strings.TrimSpace(n.root("read", "-field=passphrase", "sms/passphrase/demo-task-0001")), n.name)
		role, err := n.readJSON(n.rootToken, "sms/roles/ops")
		require.NoError(t, err, n.name)
		require.Equal(t, []any{"demo-*"}, role["task_name_globs"], "the role written before the failover is kept")
		require.Equal(t, passphrase, strings.TrimSpace(n.root("read", "-field=passphrase", "sms/roles/ops/passphrase/demo-task-0001")), n.name)
		require.Equal(t, passphrase, strings.TrimSpace(n.root("read", "-field=passphrase", "sms-aksk/passphrase/demo-task-0001")),
			"%s serves with the rotated key", n.name)
	}
}

// startRaftCluster starts three Vault servers with integrated storage on
// 127.0.0.1, initialised through the first, which is active; every node is
// unsealed and a voter, and holds the root token and unseal key.
func startRaftCluster(t *testing.T) []*vaultServer {
	t.Helper()
	// Ports first: every node's retry_join names the others.
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var nodes []*vaultServer
	for i := range ports {
		var peers []string
		for j, p := range ports {
			if j != i {
				peers = append(peers, fmt.Sprintf("http://127.0.0.1:%d", p))
			}
		}
		nodes = append(nodes, newVaultProcess(t, fmt.Sprintf("node%d", i+1),
			serverConfig{port: ports[i], raft: true, nodeID: fmt.Sprintf("node%d", i+1), retryJoin: peers}))
	}

	leader := nodes[0]
	leader.initialize()
	leader.unseal(leader.unsealKey)
	waitFor(t, 60*time.Second, "node1 to become active", func() bool { return isActive(leader) })
	for _, n := range nodes[1:] {
		n.rootToken, n.unsealKey = leader.rootToken, leader.unsealKey
		waitFor(t, 60*time.Second, n.name+" to join the cluster", func() bool {
			_, _, err := n.cli("", "operator", "unseal", leader.unsealKey)
			return err == nil && isUnsealed(n)
		})
	}
	waitFor(t, 60*time.Second, "three voters", func() bool {
		out, _, err := leader.cli(leader.rootToken, "operator", "raft", "list-peers", "-format=json")
		return err == nil && strings.Count(out, `"voter": true`) == 3
	})

	return nodes
}

// waitForNewActive waits until one of the survivors leads, and returns it.
func waitForNewActive(t *testing.T, survivors []*vaultServer) *vaultServer {
	t.Helper()
	var active *vaultServer
	waitFor(t, 90*time.Second, "a new active node", func() bool {
		for _, n := range survivors {
			if isActive(n) {
				active = n
				return true
			}
		}
		return false
	})
	return active
}

// sysState reads an unauthenticated status endpoint; sys/health answers a
// standby with 429 and a sealed node with 503, so the body is read whatever
// the status.
func sysState(v *vaultServer, path string, into any) bool {
	resp, err := http.Get(v.addr + "/v1/" + path)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(into) == nil
}

func isUnsealed(v *vaultServer) bool {
	var h struct {
		Initialized bool `json:"initialized"`
		Sealed      bool `json:"sealed"`
	}
	return sysState(v, "sys/health", &h) && h.Initialized && !h.Sealed
}

// isActive asks the node itself whether it leads.
func isActive(v *vaultServer) bool {
	var l struct {
		IsSelf bool `json:"is_self"`
	}
	return sysState(v, "sys/leader", &l) && l.IsSelf
}
