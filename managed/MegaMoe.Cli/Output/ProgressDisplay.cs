using Spectre.Console;

namespace MegaMoe.Cli.Output;

/// <summary>
/// Live progress bars on standard error while a person watches; nothing at all otherwise (redirected, --json, tests), so
/// logs and captured output hold results only.
/// </summary>
internal static class ProgressDisplay
{
    /// <summary>Runs <paramref name="work"/> with a bar per task it starts through the <see cref="ProgressTasks"/> it gets.</summary>
    public static T Run<T>(CliConsole console, bool json, Func<ProgressTasks, T> work)
    {
        if (json || !console.Interactive)
        {
            return work(new ProgressTasks(null));
        }

        return console.Status.Progress()
            .AutoClear(true)
            .HideCompleted(false)
            .Columns(
                new TaskDescriptionColumn(),
                new ProgressBarColumn(),
                new PercentageColumn(),
                new ElapsedTimeColumn(),
                new SpinnerColumn())
            .Start(context => work(new ProgressTasks(context)));
    }
}

/// <summary>Starts progress tasks, or does nothing when no bars are shown.</summary>
internal sealed class ProgressTasks(ProgressContext? context)
{
    /// <summary>A task counting to <paramref name="total"/>; report absolute values.</summary>
    public IProgress<double> Start(string description, double total = 1)
    {
        if (context is null)
        {
            return new NoProgress();
        }

        ProgressTask task = context.AddTask(Markup.Escape(description), maxValue: total);
        return new TaskProgress(task);
    }

    private sealed class NoProgress : IProgress<double>
    {
        public void Report(double value)
        {
        }
    }

    // Spectre's task is updated from worker threads during the weight upload; ProgressTask locks internally.
    private sealed class TaskProgress(ProgressTask task) : IProgress<double>
    {
        public void Report(double value) => task.Value = value;
    }
}
