package sms

// Version is the plugin's semantic version. Release builds set it with
//
//	-ldflags "-X github.com/sms-vault/vault-plugin-secrets-sms.Version=v1.2.3"
//
// and Vault compares it with the version given to `vault plugin register
// -version`, so it must stay a valid semver with a leading "v".
var Version = "v0.1.0-dev"
