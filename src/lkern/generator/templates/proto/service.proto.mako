// ${Title}Service: what other services may ask of ${name} (${code}, port ${grpc_port}).
syntax = "proto3";

package lkern.proto.${name}.v1;

import "google/protobuf/timestamp.proto";

service ${Title}Service {
  // The ${noun}, or NOT_FOUND (a soft-deleted ${noun} counts as not found).
  rpc Get${Noun}(Get${Noun}Request) returns (Get${Noun}Response);
  // The ${name} found among up to 1000 ids; missing ids are left out.
  rpc Get${Title}ByIds(Get${Title}ByIdsRequest) returns (Get${Title}ByIdsResponse);
}

message ${Noun} {
  string id = 1;
% if prefix:
  string code = 2;
% endif
  string name = 3;
  bool is_active = 4;
  int64 version = 5;
  google.protobuf.Timestamp created_at = 6;
  google.protobuf.Timestamp updated_at = 7;
}

message Get${Noun}Request {
  string id = 1;
}

message Get${Noun}Response {
  ${Noun} ${noun} = 1;
}

message Get${Title}ByIdsRequest {
  repeated string ids = 1;
}

message Get${Title}ByIdsResponse {
  repeated ${Noun} ${name} = 1;
}
