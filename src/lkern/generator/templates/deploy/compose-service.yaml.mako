  ${name}:
    <<: *lkern-image
    restart: unless-stopped
    command: ["serve", "${name}"]
    environment:
% if files:
      <<: [*lkern-env, *${name}-database, *s3-credentials]
      LKERN_${NAME}_STORAGE_URL: s3://lkern-${name}?endpoint=http://minio:9000&region=us-east-1
% else:
      <<: [*lkern-env, *${name}-database]
% endif
    ports:
      - "${port}:${port}"
    healthcheck:
      <<: *service-healthcheck
      test: ["CMD", "lkern-healthcheck", "http://127.0.0.1:${port}/health/ready"]
    depends_on:
      migrate-${name}:
        condition: service_completed_successfully
      kafka:
        condition: service_healthy
% if files:
      minio:
        condition: service_healthy
% endif
      identity:
        condition: service_healthy

