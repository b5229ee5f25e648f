{{/* Envoy's configuration (envoy-configmap.yaml), apart so the Deployment can hash it. */}}
{{- define "aio.envoyConfig" -}}
admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: 9901}
static_resources:
  listeners:
    - name: grpc
      address:
        socket_address: {address: 0.0.0.0, port_value: {{ .Values.envoy.port }}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: grpc
                codec_type: AUTO
                # Streams may be idle between events for long (an unanswered interrupt).
                stream_idle_timeout: 0s
                common_http_protocol_options:
                  # Long-lived connections are closed (GOAWAY) so clients rebalance.
                  max_connection_duration: {{ .Values.envoy.maxConnectionDuration }}
                http2_protocol_options:
                  max_concurrent_streams: {{ .Values.config.max_concurrent_streams | default 1000 | int }}
                access_log:
                  - name: envoy.access_loggers.stdout
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
                      log_format:
                        json_format:
                          time: "%START_TIME%"
                          method: "%REQ(:PATH)%"
                          grpc_status: "%GRPC_STATUS%"
                          response_flags: "%RESPONSE_FLAGS%"
                          duration_ms: "%DURATION%"
                          upstream: "%UPSTREAM_HOST%"
                          attempts: "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"
                          downstream: "%DOWNSTREAM_REMOTE_ADDRESS%"
                          request_id: "%REQ(X-REQUEST-ID)%"
                route_config:
                  name: aio
                  virtual_hosts:
                    - name: aio
                      domains: ["*"]
                      routes:
                        - name: read-only-unary
                          match:
                            safe_regex:
                              regex: {{ .Values.envoy.retryMethodsRegex | quote }}
                          route:
                            cluster: aio
                            timeout: 0s
                            retry_policy:
                              retry_on: unavailable,reset,connect-failure,refused-stream
                              num_retries: {{ .Values.envoy.numRetries }}
                              retry_back_off: {base_interval: 0.05s, max_interval: 1s}
                              retry_host_predicate:
                                - name: envoy.retry_host_predicates.previous_hosts
                                  typed_config:
                                    "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
                              host_selection_retry_max_attempts: 3
                        - name: everything-else
                          match: {prefix: "/"}
                          route:
                            cluster: aio
                            timeout: 0s
                            # Only failures before a request reached a replica are safe to retry.
                            retry_policy:
                              retry_on: connect-failure,refused-stream
                              num_retries: {{ .Values.envoy.numRetries }}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: aio
      # STRICT_DNS: every address the headless Service returns is a host of its own.
      cluster_type:
        name: envoy.cluster.dns
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster
          dns_lookup_family: V4_PREFERRED
          dns_refresh_rate: 5s
          respect_dns_ttl: false
          all_addresses_in_single_endpoint: false
      lb_policy: LEAST_REQUEST
      connect_timeout: 2s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options:
              max_concurrent_streams: {{ .Values.config.max_concurrent_streams | default 1000 | int }}
              connection_keepalive: {interval: 30s, timeout: 10s}
      load_assignment:
        cluster_name: aio
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address:
                      address: {{ include "aio.headlessHost" . }}
                      port_value: {{ .Values.ports.grpc }}
      health_checks:
        - timeout: {{ .Values.envoy.healthCheck.timeout }}
          interval: {{ .Values.envoy.healthCheck.interval }}
          unhealthy_threshold: {{ .Values.envoy.healthCheck.unhealthyThreshold }}
          healthy_threshold: {{ .Values.envoy.healthCheck.healthyThreshold }}
          # grpc.health.v1.Health/Check with service "": NOT_SERVING while a replica drains.
          grpc_health_check: {}
      outlier_detection:
        consecutive_5xx: 5
        consecutive_gateway_failure: 3
        interval: 5s
        base_ejection_time: 15s
        max_ejection_percent: 50
      ignore_health_on_host_removal: true
{{- end -}}
