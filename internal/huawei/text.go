package huawei

import "encoding/json"

// UnmarshalJSON makes what IAM says of a key Printable as it is decoded:
// the engine repeats access key ids, owners and descriptions in rotation
// errors, warnings and logs.
func (a *AccessKeyInfo) UnmarshalJSON(b []byte) error {
	type plain AccessKeyInfo // without this method
	var v plain
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = AccessKeyInfo{Access: Printable(v.Access), UserID: Printable(v.UserID), Status: Printable(v.Status),
		CreateTime: Printable(v.CreateTime), Description: Printable(v.Description)}
	return nil
}
