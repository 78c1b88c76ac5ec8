
  migrate-${name}:
    <<: *migration
    command: ["migrate", "${name}", "upgrade"]
    environment: &${name}-database
      LKERN_${NAME}_DATABASE_URL: postgresql+asyncpg://lkern:${"${"}POSTGRES_PASSWORD:-lkern}@postgres:5432/${name}
