"""CleanRL-style PPO (one file, top to bottom, as cleanrl/ppo.py) on `ploutos.make_vec`.

    python python/examples/cleanrl_ppo.py --config config/default.ron --num-envs 64

The vector env is Gymnasium's (autoreset mode SAME_STEP): when an episode ends, the
returned observation already starts the next one and `infos["final_obs"]` holds the last
one, so a truncation bootstraps from V(final_obs) as the Rust learner does. Returned arrays
are views the next step overwrites: the rollout stores copies (`torch.tensor` copies).
A MultiDiscrete([3] * n_tickers) policy: one categorical head per ticker.
"""

import argparse
import time

import numpy as np
import torch
import torch.nn as nn
from torch.distributions.categorical import Categorical

import ploutos


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim, n_tickers):
        super().__init__()
        self.n_tickers = n_tickers
        self.critic = nn.Sequential(layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
                                    layer_init(nn.Linear(64, 64)), nn.Tanh(), layer_init(nn.Linear(64, 1), std=1.0))
        self.actor = nn.Sequential(layer_init(nn.Linear(obs_dim, 64)), nn.Tanh(),
                                   layer_init(nn.Linear(64, 64)), nn.Tanh(),
                                   layer_init(nn.Linear(64, 3 * n_tickers), std=0.01))

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, action=None):
        logits = self.actor(x).view(-1, self.n_tickers, 3)
        dist = Categorical(logits=logits)
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action).sum(1), dist.entropy().sum(1), self.critic(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/default.ron")
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--num-steps", type=int, default=256)
    ap.add_argument("--total-timesteps", type=int, default=500_000)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--gae-lambda", type=float, default=0.95)
    ap.add_argument("--num-minibatches", type=int, default=16)
    ap.add_argument("--update-epochs", type=int, default=4)
    ap.add_argument("--clip-coef", type=float, default=0.2)
    ap.add_argument("--ent-coef", type=float, default=0.01)
    ap.add_argument("--vf-coef", type=float, default=0.5)
    ap.add_argument("--max-grad-norm", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)

    envs = ploutos.make_vec(a.config, num_envs=a.num_envs, seed=a.seed)
    n, d, obs_dim = envs.num_envs, envs.n_tickers, envs.obs_dim
    agent = Agent(obs_dim, d)
    optimizer = torch.optim.Adam(agent.parameters(), lr=a.learning_rate, eps=1e-5)
    batch_size = n * a.num_steps
    minibatch_size = batch_size // a.num_minibatches
    num_iterations = a.total_timesteps // batch_size

    obs = torch.zeros((a.num_steps, n, obs_dim))
    actions = torch.zeros((a.num_steps, n, d), dtype=torch.long)
    logprobs = torch.zeros((a.num_steps, n))
    rewards = torch.zeros((a.num_steps, n))
    dones = torch.zeros((a.num_steps, n))
    values = torch.zeros((a.num_steps, n))

    global_step, start = 0, time.time()
    next_obs = torch.tensor(envs.reset()[0])
    next_done = torch.zeros(n)
    for iteration in range(1, num_iterations + 1):
        optimizer.param_groups[0]["lr"] = (1.0 - (iteration - 1.0) / num_iterations) * a.learning_rate
        episode_rewards = []
        for step in range(a.num_steps):
            global_step += n
            obs[step], dones[step] = next_obs, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob
            o, r, term, trunc, infos = envs.step(action.numpy())
            reward = torch.tensor(r)
            # SAME_STEP autoreset: bootstrap truncated episodes from their final observation.
            if trunc.any():
                idx = np.flatnonzero(trunc & ~term)
                with torch.no_grad():
                    final_v = agent.get_value(torch.tensor(infos["final_obs"][idx])).flatten()
                reward[idx] += a.gamma * final_v
            rewards[step] = reward
            done = term | trunc
            episode_rewards += infos["episode_reward"][done].tolist()
            next_obs, next_done = torch.tensor(o), torch.tensor(done, dtype=torch.float32)

        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(a.num_steps)):
                if t == a.num_steps - 1:
                    nextnonterminal, nextvalues = 1.0 - next_done, next_value
                else:
                    nextnonterminal, nextvalues = 1.0 - dones[t + 1], values[t + 1]
                delta = rewards[t] + a.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + a.gamma * a.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        b_obs, b_actions = obs.reshape(-1, obs_dim), actions.reshape(-1, d)
        b_logprobs, b_advantages = logprobs.reshape(-1), advantages.reshape(-1)
        b_returns, b_values = returns.reshape(-1), values.reshape(-1)
        b_inds = np.arange(batch_size)
        for _ in range(a.update_epochs):
            np.random.shuffle(b_inds)
            for s in range(0, batch_size, minibatch_size):
                mb = b_inds[s:s + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_obs[mb], b_actions[mb])
                ratio = (newlogprob - b_logprobs[mb]).exp()
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * torch.clamp(ratio, 1 - a.clip_coef, 1 + a.clip_coef)).mean()
                newvalue = newvalue.view(-1)
                v_clipped = b_values[mb] + torch.clamp(newvalue - b_values[mb], -a.clip_coef, a.clip_coef)
                v_loss = 0.5 * torch.max((newvalue - b_returns[mb]) ** 2, (v_clipped - b_returns[mb]) ** 2).mean()
                loss = pg_loss - a.ent_coef * entropy.mean() + v_loss * a.vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), a.max_grad_norm)
                optimizer.step()
        mean_ep = np.mean(episode_rewards) if episode_rewards else float("nan")
        print(f"iteration {iteration}/{num_iterations}: step {global_step}, "
              f"episode reward {mean_ep:.2f}, SPS {int(global_step / (time.time() - start))}")


if __name__ == "__main__":
    main()
