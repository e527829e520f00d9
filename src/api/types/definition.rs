//! `Definition`: a procedure as written (states, transitions, roles, variables) and its
//! Mermaid graph. Definitions are public to every authenticated caller.

use std::sync::Arc;

use async_graphql::{Object, SimpleObject};

use indexmap::IndexMap;

use crate::definition::{
    Procedure, State, StateId, Transition, VarName, Variable, Visibility, graph,
};

/// A procedure definition at one version.
pub(crate) struct Definition {
    pub procedure: Arc<Procedure>,
}

/// A state.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct StateInfo {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Instances start here.
    pub initial: bool,
    /// Instances end here.
    pub is_final: bool,
}

/// A role of the procedure.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct RoleInfo {
    /// Name (as in tokens).
    pub name: String,
    /// Label.
    pub label: String,
}

/// An input of a transition.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct InputInfo {
    /// The variable it fills.
    pub variable: String,
    /// Whether the command must carry it.
    pub required: bool,
}

/// A transition.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct TransitionInfo {
    /// The event that takes it.
    pub event: String,
    /// Title.
    pub title: String,
    /// States it leaves from.
    pub from: Vec<String>,
    /// State it enters.
    pub to: String,
    /// Roles that may fire it.
    pub roles: Vec<String>,
    /// Inputs.
    pub inputs: Vec<InputInfo>,
    /// For a participant's transition: the procedure's states in which it may be taken
    /// (empty: any that is not final).
    pub while_in: Vec<String>,
    /// Its conditions as written (alternatives of one event are tried in order).
    pub guards: Vec<String>,
}

impl From<&Transition> for TransitionInfo {
    fn from(t: &Transition) -> TransitionInfo {
        TransitionInfo {
            event: t.event.to_string(),
            title: t.title.clone(),
            from: t.from.iter().map(ToString::to_string).collect(),
            to: t.to.to_string(),
            while_in: t.while_in.iter().map(ToString::to_string).collect(),
            guards: t.guard.iter().map(|g| g.source.clone()).collect(),
            roles: t.roles.iter().map(ToString::to_string).collect(),
            inputs: t
                .inputs
                .iter()
                .map(|i| InputInfo {
                    variable: i.variable.to_string(),
                    required: i.required,
                })
                .collect(),
        }
    }
}

/// A declared variable.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct VariableInfo {
    /// Name.
    pub name: String,
    /// Label.
    pub label: Option<String>,
    /// Type (`date`, `datetime`, `text`, `number`, `bool`, `parties`, `list`).
    #[graphql(name = "type")]
    pub kind: String,
    /// Must be given at the start.
    pub required: bool,
    /// Who besides staff reads it: `public`, or role names; empty for staff only.
    pub visible_to: Vec<String>,
    /// Computed by a legal term.
    pub computed: bool,
}

#[Object]
impl Definition {
    /// Stable id.
    async fn id(&self) -> &str {
        &self.procedure.id
    }

    /// Version.
    async fn version(&self) -> u32 {
        self.procedure.version
    }

    /// Title.
    async fn title(&self) -> &str {
        &self.procedure.title
    }

    /// Description.
    async fn description(&self) -> Option<&str> {
        self.procedure.description.as_deref()
    }

    /// Roles.
    async fn roles(&self) -> Vec<RoleInfo> {
        self.procedure
            .roles
            .iter()
            .map(|(name, label)| RoleInfo {
                name: name.to_string(),
                label: label.clone(),
            })
            .collect()
    }

    /// States.
    async fn states(&self) -> Vec<StateInfo> {
        states_info(&self.procedure.states)
    }

    /// The lifecycle of each participant (an ETS with its application), if the procedure
    /// declares one.
    async fn participant(&self) -> Option<ParticipantLifecycle> {
        self.procedure
            .participant
            .as_ref()
            .map(|d| ParticipantLifecycle {
                title: d.title.clone(),
                role: d.role.to_string(),
                states: states_info(&d.states),
                transitions: d.transitions.iter().map(Into::into).collect(),
                variables: variables_info(&d.variables),
                soccorso_answer: d.answer.as_ref().map(ToString::to_string),
            })
    }

    /// Transitions.
    async fn transitions(&self) -> Vec<TransitionInfo> {
        self.procedure.transitions.iter().map(Into::into).collect()
    }

    /// Declared variables (their values are on instances).
    async fn variables(&self) -> Vec<VariableInfo> {
        variables_info(&self.procedure.variables)
    }

    /// Whether ETS submit applications to its instances through the API.
    async fn accepts_submissions(&self) -> bool {
        self.procedure.submissions.is_some()
    }

    /// The state machine as Mermaid `stateDiagram-v2` source.
    async fn mermaid(&self) -> String {
        graph::mermaid(&self.procedure)
    }
}

/// The lifecycle of each participant.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ParticipantLifecycle {
    /// What a participant is called ("Domanda").
    pub title: String,
    /// The role participants act in.
    pub role: String,
    /// Its states.
    pub states: Vec<StateInfo>,
    /// Its transitions.
    pub transitions: Vec<TransitionInfo>,
    /// Its variables.
    pub variables: Vec<VariableInfo>,
    /// The event an answer to a soccorso istruttorio fires.
    pub soccorso_answer: Option<String>,
}

fn states_info(states: &IndexMap<StateId, State>) -> Vec<StateInfo> {
    states
        .values()
        .map(|s| StateInfo {
            id: s.id.to_string(),
            title: s.title.clone(),
            initial: s.initial,
            is_final: s.is_final,
        })
        .collect()
}

fn variables_info(variables: &IndexMap<VarName, Variable>) -> Vec<VariableInfo> {
    variables
        .values()
        .map(|v| VariableInfo {
            name: v.name.to_string(),
            label: v.label.clone(),
            kind: v.kind.to_string(),
            required: v.required,
            visible_to: match &v.visibility {
                Visibility::Staff => Vec::new(),
                Visibility::Public => vec!["public".to_string()],
                Visibility::Roles(roles) => roles.iter().map(ToString::to_string).collect(),
            },
            computed: v.term.is_some(),
        })
        .collect()
}
