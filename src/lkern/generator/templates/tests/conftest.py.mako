

@pytest.fixture(scope="session")
async def ${name}_service(fleet: Fleet) -> ServiceUnderTest:
    return await fleet.start("${name}")


@pytest.fixture
async def ${name}(${name}_service: ServiceUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a clean ${name} service."""
    await ${name}_service.wipe()
    async with ${name}_service.client() as client:
        yield client
