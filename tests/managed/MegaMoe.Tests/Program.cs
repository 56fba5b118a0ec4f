using Microsoft.Testing.Platform.Builder;

// Self-hosted runner: `dotnet MegaMoe.Tests.dll` runs the suite with Microsoft.Testing.Platform (see --help, e.g.
// --filter "TestCategory!=Gpu"), on a machine with only the .NET runtime.
ITestApplicationBuilder builder = await TestApplication.CreateBuilderAsync(args);
NUnit.VisualStudio.TestAdapter.TestingPlatformAdapter.TestingPlatformBuilderHook.AddExtensions(builder, args);
using ITestApplication app = await builder.BuildAsync();
return await app.RunAsync();
