"""The `mechinterp` command."""

import argparse
import sys
from pathlib import Path


def _chapters(names):
    from reference_impl.course.chapters import CHAPTERS, find_chapter

    return [find_chapter(n) for n in names] if names else list(CHAPTERS)


def cmd_check(args):
    import dataclasses

    from reference_impl.course import execute
    from reference_impl.course.chapters import find_chapter, repository_root

    target = Path(args.chapter)
    if target.suffix == ".ipynb":
        if not target.exists():
            raise SystemExit(f"error: no notebook at {target}")
        path = target
        chapter = None
    else:
        # The chapter of the clone the command runs in, even if the package is installed from
        # another clone.
        chapter = dataclasses.replace(find_chapter(args.chapter), root=repository_root(Path.cwd()))
        path = chapter.solution_notebook if args.solutions else chapter.learner_notebook
    print(f"running {_shown(path)} ...", flush=True)
    try:
        if chapter is None:
            chapter = execute.chapter_of(execute.read_notebook(path))
        execution = execute.execute(path, cell_timeout=args.timeout or execute.CELL_TIMEOUT,
                                    chapter=chapter)
    except execute.InvalidNotebook as error:
        raise SystemExit(f"error: {error}") from None
    results = execute.score(execution)
    if not results:
        raise SystemExit(f"error: {path} has no graded check cells")
    print(execute.format_table(results))
    for index in execution.skipped:
        print(f"note: cell {index + 1} {execute.KILLED}; it was skipped and the notebook run "
              f"again.")
    if execution.kernel_died:
        print(f"note: {execution.kernel_died}; the checks after it could not run.")
    return 0 if all(r.passed for r in results) else 1


def _shown(path):
    """A path relative to the current folder when it lies below it, else absolute."""
    path = path.resolve()
    try:
        return path.relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def cmd_build(args):
    from reference_impl.course.build import build, relative

    report = build(_chapters(args.chapters), check=args.check, force=args.force)
    for path in report.written:
        print(f"wrote {relative(path)}")
    for path in report.out_of_date:
        print(f"out of date: {relative(path)}")
    for path, cells in report.refused.items():
        print(f"refused to overwrite {relative(path)}: its answer cells {', '.join(cells)} were "
              f"edited (pass --force to discard those edits)")
    if args.check and not report.out_of_date:
        print(f"all {len(report.unchanged)} generated files are up to date")
    return 1 if report.out_of_date or report.refused else 0


def cmd_nbgrader_course(args):
    from reference_impl.course.nbgrader_course import write_course

    chapters = _chapters(args.chapters)
    root = write_course(Path(args.directory), chapters)
    print(f"wrote an nbgrader course in {root}, with the assignments "
          f"{', '.join(c.folder for c in chapters)}")
    print(f"next: cd {root} && nbgrader generate_assignment {chapters[0].folder}")
    return 0


def cmd_autograde(args):
    from reference_impl.course.nbgrader_course import autograde

    outcomes = autograde(Path(args.directory), args.assignment, args.students or None,
                         gradebook=args.gradebook, workers=args.workers, scheduler=args.scheduler)
    for outcome in outcomes:
        status = "graded" if outcome.success else f"0 points: {outcome.reason}"
        print(f"{outcome.student}: {status}")
    return 0


def cmd_zoo_list(args):
    from reference_impl.zoo import read_manifest
    from reference_impl.zoo.recipes import RECIPES, checkpoint_mb, recipe

    shipped = read_manifest()
    for name in RECIPES:
        state = f"{checkpoint_mb(name):.1f} MB" if name in shipped else "not trained"
        print(f"{name:<18} {state:<12} {recipe(name).DESCRIPTION}")
    return 0


def cmd_zoo_train(args):
    import torch

    from reference_impl.zoo import MODELS_DIR
    from reference_impl.zoo.recipes import bar_table, train_and_save

    # The zoo's models are small: one thread is fastest, and the same thread count on every
    # machine keeps a retrain's arithmetic, and so its bars, reproducible.
    torch.set_num_threads(1)
    metrics = train_and_save(args.name, seed=args.seed)
    print(f"wrote {MODELS_DIR / args.name}")
    print(bar_table(args.name, metrics))
    return 0


def cmd_zoo_verify(args):
    from reference_impl.zoo.recipes import MAX_CHECKPOINT_MB, RECIPES, bar_table, verify

    results = [verify(name) for name in args.names or RECIPES]
    for result in results:
        print(f"{result.name}: {'OK' if result.ok else 'FAILED'}")
        if result.error:
            print(f"  {result.error}")
            continue
        changed = ", ".join(result.changed_files)
        print(f"  checksums: {'changed: ' + changed if changed else 'match the manifest'}")
        print(f"  size: {result.size_mb:.1f} MB (limit {MAX_CHECKPOINT_MB:g} MB)")
        if result.metrics:
            print(bar_table(result.name, result.metrics))
    return 0 if all(r.ok for r in results) else 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="mechinterp",
                                     description="Tools of the mechanistic-interpretability course.")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="run a chapter's notebook and grade every exercise")
    check.add_argument("chapter", help="a chapter (01_superposition, 01 or superposition) "
                                       "or the path of a notebook to grade")
    check.add_argument("--solutions", action="store_true",
                       help="grade the solution notebook instead of the learner's")
    check.add_argument("--timeout", type=int, help="seconds a cell may run (default 120)")
    check.set_defaults(run=cmd_check)

    build = commands.add_parser("build", help="regenerate notebooks and site pages from sources")
    build.add_argument("chapters", nargs="*", help="chapters to build (default: all)")
    build.add_argument("--check", action="store_true",
                       help="change nothing; exit 1 and name every out-of-date file")
    build.add_argument("--force", action="store_true",
                       help="overwrite learner notebooks even if their answers were edited")
    build.set_defaults(run=cmd_build)

    course = commands.add_parser("nbgrader-course", help="write an nbgrader course directory")
    course.add_argument("directory")
    course.add_argument("chapters", nargs="*", help="chapters to include (default: all)")
    course.set_defaults(run=cmd_nbgrader_course)

    grade = commands.add_parser("autograde", help="autograde every submission of an assignment "
                                                  "with nbgrader, one student at a time or many "
                                                  "in parallel on Dask")
    grade.add_argument("directory", help="the nbgrader course directory")
    grade.add_argument("assignment", help="e.g. 01_superposition")
    grade.add_argument("students", nargs="*", help="default: every student who submitted")
    grade.add_argument("--workers", type=int, metavar="N",
                       help="grade N students at a time on a Dask cluster of this machine "
                            "(one per core is fastest)")
    grade.add_argument("--scheduler", metavar="ADDRESS",
                       help="grade on an existing Dask cluster, e.g. tcp://10.0.0.5:8786; its "
                            "workers need the course directory at the same path")
    grade.add_argument("--gradebook", metavar="URL",
                       help="the gradebook's database, e.g. postgresql://grader@db/mechinterp "
                            "(default: $MECHINTERP_GRADEBOOK, else gradebook.db in the course)")
    grade.set_defaults(run=cmd_autograde)

    zoo = commands.add_parser("zoo", help="the course's own trained models")
    zoo_commands = zoo.add_subparsers(dest="zoo_command", required=True)
    zoo_commands.add_parser("list", help="list the zoo's models").set_defaults(run=cmd_zoo_list)
    train = zoo_commands.add_parser("train", help="train a zoo model from scratch on the CPU "
                                                  "and overwrite its checkpoint")
    train.add_argument("name")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(run=cmd_zoo_train)
    verify = zoo_commands.add_parser("verify", help="recompute checksums and behaviour metrics; "
                                                    "exit 1 unless every bar is met")
    verify.add_argument("names", nargs="*", help="default: every model")
    verify.set_defaults(run=cmd_zoo_verify)

    args = parser.parse_args(argv)
    from reference_impl.errors import CourseError

    try:
        return args.run(args)
    except CourseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
