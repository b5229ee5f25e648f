{{/*
Envoy's configuration: deploy/envoy/envoy.yaml itself (files/envoy.yaml is a link to it, so
the chart and the plain deployment never drift), with the listener on envoy.port and the
replicas at this release's headless Service.
*/}}
{{- define "aio.envoyConfig" -}}
{{- $config := .Files.Get "files/envoy.yaml" | fromYaml -}}
{{- if hasKey $config "Error" -}}
{{- fail (printf "files/envoy.yaml (deploy/envoy/envoy.yaml): %s" $config.Error) -}}
{{- end -}}
{{- $listener := first $config.static_resources.listeners -}}
{{- $_ := set $listener.address.socket_address "port_value" (int .Values.envoy.port) -}}
{{- $cluster := first $config.static_resources.clusters -}}
{{- $endpoint := (first (first $cluster.load_assignment.endpoints).lb_endpoints).endpoint -}}
{{- $_ := set $endpoint.address.socket_address "address" (include "aio.headlessHost" .) -}}
{{- $_ := set $endpoint.address.socket_address "port_value" (int .Values.ports.grpc) -}}
{{- toYaml $config -}}
{{- end -}}
